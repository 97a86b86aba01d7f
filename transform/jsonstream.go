package transform

import (
	"math/bits"
	"pgveil/schema"
)

// The json transformer works in one pass over the document: it reads the
// input, writes the output as it goes, and masks values as it meets them.
// No tree is built: a value no path can reach is copied (with jsonb's
// separators), a dropped member is checked and left out, and a selected
// scalar is masked by every rule that selects it, in the order written.
//
// Which rules select a value is tracked per rule as the set of positions
// in its path matched so far (a bit set: a path has at most maxPathSteps
// steps), or as selected once the whole path matched here or at an
// ancestor. Paths select in the document as it arrived: dropping an array
// element does not shift the indices other paths see.

// selected marks a value that a rule's path selects, or that lies inside
// one it selects.
const selected = uint64(1) << 63

// maxPathSteps bounds a path's length so that its matched positions fit in
// a word beside the selected bit.
const maxPathSteps = 62

// The walk is iterative: a document may nest as deep as its size allows
// (PostgreSQL accepts as deep as its own stack allows, which a setting and
// a ulimit can raise), and a value that stops the masking stops
// replication for good, so nothing here recurses. What the walk keeps per
// open container: a frame and a word per rule while some rule can still
// select inside it ("live"), one byte below that. Both grow with the depth
// alone, which the input's size bounds (an open container is at least one
// byte of it).

// jsonWalk is the state of one Transform call.
type jsonWalk struct {
	p     jsonParser
	out   []byte
	rules []jsonRule
	// states holds one level per live value being read, len(rules) words
	// each: the rules' matched positions at that value. The value read at
	// frame depth d has its states at level d.
	states []uint64
	// frames are the live containers open around the position, outermost
	// first.
	frames []jframe
	// plain holds the closers of the containers open inside a value being
	// copied or skipped (no rule can select in it).
	plain []byte
	// names maps the names written in open objects whose names rules may
	// mask (frames with named set) to the input names they come from;
	// nameStack lists them by frame, to forget them when the frame closes.
	names     map[writtenName]string
	nameStack []writtenName
}

// jframe is an open container whose members rules may select.
type jframe struct {
	closer  byte // ']' or '}'
	idx     int  // index of the member being read
	written int  // members written so far
	// named: a rule may mask names of this object's members, so the
	// names written are recorded (from names[namesFrom:]) to refuse two
	// equal names where the input had two different ones.
	named     bool
	namesFrom int
}

// writtenName is a member name written in an object whose names rules may
// mask: at which frame depth, as written.
type writtenName struct {
	depth int
	name  string
}

// errNameCollision fails a document in which masking made two member
// names of one object equal: writing it would merge two members silently
// (jsonb keeps the last), or write an object no jsonb reader can tell
// apart.
var errNameCollision = invalid("masked member names collide in an object (mask names with hash, or fake with unique: true)")

// start is a rule's state at the root of the document.
func (r *jsonRule) start() uint64 {
	if len(r.path) == 0 {
		return selected
	}
	return 1
}

// step is a rule's state at a member (obj, with its decoded key) or an
// element (with its index) of a value whose state is s.
//
// A names rule's state is never selected (selecting a member's name
// selects nothing inside it): when its whole path matches a member, the
// state has bit len(path) set, which member reads and the next step
// clears.
func (r *jsonRule) step(s uint64, obj bool, key []byte, idx int) uint64 {
	if s&selected != 0 {
		return selected
	}
	if r.names {
		s &^= 1 << len(r.path)
	}
	var next uint64
	for s != 0 {
		at := bits.TrailingZeros64(s)
		s &= s - 1
		seg := &r.path[at]
		switch seg.kind {
		case segKey:
			if obj && string(key) == seg.key {
				next |= 2 << at
			}
		case segIndex:
			if !obj && idx == seg.index {
				next |= 2 << at
			}
		case segAll:
			next |= 2 << at
		case segDeep:
			next |= 1 << at // the key may be deeper still
			if obj && string(key) == seg.key {
				next |= 2 << at
			}
		}
	}
	if next&(1<<len(r.path)) != 0 && !r.names {
		return selected
	}
	return next
}

// namesMember reports whether a names rule in state s (at a member)
// selects that member's name.
func (r *jsonRule) namesMember(s uint64) bool {
	return r.names && s&(1<<len(r.path)) != 0
}

// namesArmed reports whether a names rule in state s (at an object) may
// select names of its members: its path's last step is pending.
func (r *jsonRule) namesArmed(s uint64) bool {
	return r.names && s != selected && s&(1<<(len(r.path)-1)) != 0
}

// maskName masks a member's name with the rule, as a string.
func (r *jsonRule) maskName(name []byte) ([]byte, error) {
	v := jscalar{kind: '"', str: name, dirty: true}
	if err := r.maskScalar(&v); err != nil {
		return nil, err
	}
	switch {
	case v.kind == 'z':
		return nil, invalid("a rule gave a member name no value")
	case v.dirty:
		return v.str, nil
	}
	return v.text(), nil
}

// run masks the document in w.p.s.
func (w *jsonWalk) run() error {
	n := len(w.rules)
	w.states = append(w.states[:0], make([]uint64, n)...)
	live := false
	for i := range w.rules {
		w.states[i] = w.rules[i].start()
		live = live || w.states[i] != 0
		if w.states[i] == selected && w.rules[i].drop {
			// Check refuses drop at $; should one get here, nothing is
			// left of the document.
			if err := w.plainValue(false); err != nil {
				return err
			}
			w.out = append(w.out[:0], "null"...)
			return w.end()
		}
	}
	var err error
	if live {
		err = w.walk()
	} else {
		err = w.plainValue(true)
	}
	if err != nil {
		return err
	}
	return w.end()
}

// end checks that nothing but white space follows the document.
func (w *jsonWalk) end() error {
	w.p.space()
	if w.p.i != len(w.p.s) {
		return errJSON
	}
	return nil
}

// walk reads the live value at the parser's position, whose states are
// at level len(w.frames), and writes it, masked. Containers open frames
// instead of recursing; a member no rule can select in is copied, and a
// dropped one skipped, by plainValue.
func (w *jsonWalk) walk() error {
	p := &w.p
	n := len(w.rules)
	w.frames = w.frames[:0]
	for {
		// A live value.
		p.space()
		if p.i >= len(p.s) {
			return errJSON
		}
		if c := p.s[p.i]; c == '{' || c == '[' {
			closer := closerOf(c)
			p.i++
			w.out = append(w.out, c)
			p.space()
			if p.i < len(p.s) && p.s[p.i] == closer {
				p.i++
				w.out = append(w.out, closer)
			} else {
				f := jframe{closer: closer}
				if c == '{' {
					base := len(w.frames) * n
					for i := range w.rules {
						f.named = f.named || w.rules[i].namesArmed(w.states[base+i])
					}
					f.namesFrom = len(w.nameStack)
				}
				w.frames = append(w.frames, f)
				if need := (len(w.frames) + 1) * n; len(w.states) < need {
					w.states = append(w.states, make([]uint64, need-len(w.states))...)
				}
				live, err := w.member()
				if err != nil {
					return err
				}
				if live {
					continue
				}
			}
		} else {
			v, err := p.scalar()
			if err != nil {
				return err
			}
			if err := w.scalar(len(w.frames)*n, v); err != nil {
				return err
			}
		}
		// The value is read: close the containers it ends, until a
		// member whose value is live.
		for {
			if len(w.frames) == 0 {
				return nil
			}
			f := &w.frames[len(w.frames)-1]
			p.space()
			if p.i >= len(p.s) {
				return errJSON
			}
			switch p.s[p.i] {
			case f.closer:
				p.i++
				w.out = append(w.out, f.closer)
				if f.named {
					for _, wn := range w.nameStack[f.namesFrom:] {
						delete(w.names, wn)
					}
					w.nameStack = w.nameStack[:f.namesFrom]
				}
				w.frames = w.frames[:len(w.frames)-1]
				continue
			case ',':
				p.i++
				f.idx++
			default:
				return errJSON
			}
			live, err := w.member()
			if err != nil {
				return err
			}
			if live {
				break
			}
		}
	}
}

func closerOf(open byte) byte {
	if open == '{' {
		return '}'
	}
	return ']'
}

// member reads the next member of the innermost frame up to its value:
// the key of an object's member, the rules' states at the value. It
// returns true when the value is live (for walk to read); otherwise it
// has copied the value, or skipped it when a rule drops it.
func (w *jsonWalk) member() (bool, error) {
	p := &w.p
	f := &w.frames[len(w.frames)-1]
	obj := f.closer == '}'
	var key, keyRaw []byte
	if obj {
		var err error
		if key, keyRaw, err = p.memberKey(); err != nil {
			return false, err
		}
	}
	n := len(w.rules)
	parent, child := (len(w.frames)-1)*n, len(w.frames)*n
	live, drop := false, false
	for i := range w.rules {
		s := w.rules[i].step(w.states[parent+i], obj, key, f.idx)
		if s == selected && w.rules[i].drop {
			drop = true
		}
		w.states[child+i] = s
		live = live || s != 0
	}
	if drop {
		return false, w.plainValue(false)
	}
	if f.written > 0 {
		w.out = append(w.out, ", "...)
	}
	f.written++
	if obj {
		if f.named {
			if err := w.writeName(child, key, keyRaw); err != nil {
				return false, err
			}
		} else {
			w.out = appendKey(w.out, key, keyRaw)
		}
	}
	if !live {
		return false, w.plainValue(true)
	}
	return true, nil
}

// writeName writes the name of a member of an object whose names rules
// may mask (the member's states at child): masked by every rule that
// selects it, in order, and checked against the names written before it
// in the object. Two equal names from two different input names fail the
// document; equal input names (json keeps duplicates) are left as they
// are.
func (w *jsonWalk) writeName(child int, key, keyRaw []byte) error {
	name, masked := key, false
	for i := range w.rules {
		if w.rules[i].namesMember(w.states[child+i]) {
			var err error
			if name, err = w.rules[i].maskName(name); err != nil {
				return err
			}
			masked = true
		}
	}
	wn := writtenName{depth: len(w.frames), name: string(name)}
	if from, ok := w.names[wn]; ok {
		if from != string(key) {
			return errNameCollision
		}
	} else {
		if w.names == nil {
			w.names = make(map[writtenName]string)
		}
		w.names[wn] = string(key)
		w.nameStack = append(w.nameStack, wn)
	}
	if masked {
		w.out = AppendJSONString(w.out, name)
		w.out = append(w.out, ": "...)
	} else {
		w.out = appendKey(w.out, key, keyRaw)
	}
	return nil
}

// appendKey writes a member's key and ": ": as written, or encoded again
// from its decoded value (keyRaw nil: it had escapes).
func appendKey(dst, key, keyRaw []byte) []byte {
	if keyRaw != nil {
		dst = append(dst, keyRaw...)
	} else {
		dst = AppendJSONString(dst, key)
	}
	return append(dst, ": "...)
}

// memberKey reads an object member's key and the colon after it: the key
// decoded, and its text as written (nil when it has escapes).
func (p *jsonParser) memberKey() (key, keyRaw []byte, err error) {
	p.space()
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return nil, nil, errJSON
	}
	start := p.i
	esc, err := p.skipStr()
	if err != nil {
		return nil, nil, err
	}
	keyRaw = p.s[start:p.i]
	key = keyRaw[1 : len(keyRaw)-1]
	if esc {
		sub := jsonParser{s: keyRaw}
		key, _ = sub.strBytes()
		keyRaw = nil
	}
	p.space()
	if p.i >= len(p.s) || p.s[p.i] != ':' {
		return nil, nil, errJSON
	}
	p.i++
	return key, keyRaw, nil
}

// scalar reads the string, number, boolean or null at p.i.
func (p *jsonParser) scalar() (jscalar, error) {
	switch c := p.s[p.i]; {
	case c == '"':
		start := p.i
		esc, err := p.skipStr()
		if err != nil {
			return jscalar{}, err
		}
		return jscalar{kind: '"', raw: p.s[start:p.i], esc: esc}, nil
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		if !p.number() {
			return jscalar{}, errJSON
		}
		return jscalar{kind: 'n', raw: p.s[start:p.i]}, nil
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(p.s)-p.i >= len(lit) && string(p.s[p.i:p.i+len(lit)]) == lit {
			kind := byte('b')
			if lit == "null" {
				kind = 'z'
			}
			raw := p.s[p.i : p.i+len(lit)]
			p.i += len(lit)
			return jscalar{kind: kind, raw: raw}, nil
		}
	}
	return jscalar{}, errJSON
}

// scalar masks a live scalar with every rule that selects it, in order,
// and writes the result.
func (w *jsonWalk) scalar(base int, v jscalar) error {
	for i := range w.rules {
		if w.states[base+i] == selected {
			if err := w.rules[i].maskScalar(&v); err != nil {
				return err
			}
		}
	}
	if v.dirty {
		w.out = AppendJSONString(w.out, v.str)
	} else {
		w.out = append(w.out, v.raw...)
	}
	return nil
}

// plainValue copies (emit) or checks and skips (!emit) the value at the
// parser's position, which no rule can select in, with jsonb's separators.
// Its containers are tracked by their closers alone.
func (w *jsonWalk) plainValue(emit bool) error {
	p := &w.p
	stack := w.plain[:0]
	defer func() { w.plain = stack[:0] }()
	for {
		// A value.
		p.space()
		if p.i >= len(p.s) {
			return errJSON
		}
		if c := p.s[p.i]; c == '{' || c == '[' {
			closer := closerOf(c)
			p.i++
			if emit {
				w.out = append(w.out, c)
			}
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != closer {
				stack = append(stack, closer)
				if c == '{' {
					if err := w.plainKey(emit); err != nil {
						return err
					}
				}
				continue
			}
			p.i++
			if emit {
				w.out = append(w.out, closer)
			}
		} else {
			v, err := p.scalar()
			if err != nil {
				return err
			}
			if emit {
				w.out = append(w.out, v.raw...)
			}
		}
		// The value is read: close what it ends, up to the next member.
		for {
			if len(stack) == 0 {
				return nil
			}
			top := stack[len(stack)-1]
			p.space()
			if p.i >= len(p.s) {
				return errJSON
			}
			if p.s[p.i] == top {
				p.i++
				if emit {
					w.out = append(w.out, top)
				}
				stack = stack[:len(stack)-1]
				continue
			}
			if p.s[p.i] != ',' {
				return errJSON
			}
			p.i++
			if emit {
				w.out = append(w.out, ", "...)
			}
			if top == '}' {
				if err := w.plainKey(emit); err != nil {
					return err
				}
			}
			break
		}
	}
}

// plainKey reads an object member's key in plainValue and writes it.
func (w *jsonWalk) plainKey(emit bool) error {
	key, keyRaw, err := w.p.memberKey()
	if err != nil {
		return err
	}
	if emit {
		w.out = appendKey(w.out, key, keyRaw)
	}
	return nil
}

// jscalar is a scalar being masked.
type jscalar struct {
	kind  byte   // '"', 'n' number, 'b' boolean, 'z' null
	raw   []byte // as written (strings with their quotes), until masked
	esc   bool   // raw is a string with escapes
	str   []byte // a masked string's value (dirty)
	dirty bool
}

// text is a string's value.
func (v *jscalar) text() []byte {
	if v.dirty {
		return v.str
	}
	inner := v.raw[1 : len(v.raw)-1]
	if !v.esc {
		return inner
	}
	p := jsonParser{s: v.raw}
	b, _ := p.strBytes()
	return b
}

// maskScalar applies the rule to a selected scalar: strings through the
// rule built for text, numbers through the one built for numeric when
// there is one (else as text, becoming strings), booleans as text; null
// stays null.
func (r *jsonRule) maskScalar(v *jscalar) error {
	var in []byte
	asNumber := false
	switch v.kind {
	case 'z':
		return nil
	case 'n':
		in, asNumber = v.raw, r.num != nil
	case 'b':
		in = v.raw
	default:
		in = v.text()
	}
	t := r.str
	if asNumber {
		t = r.num
	}
	out, err := t.Transform(schema.Value{Text: in})
	if err != nil {
		return err
	}
	// SQL NULL becomes JSON null; a number stays a number when its rule
	// gives a JSON number, else it becomes a string.
	switch {
	case out.State == schema.Null:
		*v = jscalar{kind: 'z', raw: []byte("null")}
	case asNumber && isJSONNumber(out.Text):
		*v = jscalar{kind: 'n', raw: out.Text}
	default:
		*v = jscalar{kind: '"', str: out.Text, dirty: true}
	}
	return nil
}
