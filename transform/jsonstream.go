package transform

import "math/bits"

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

// jsonWalk is the state of one Transform call.
type jsonWalk struct {
	p     jsonParser
	out   []byte
	rules []jsonRule
	// states holds one frame per level being read: a word per rule, the
	// rule's matched positions at the value of that level.
	states []uint64
}

// start is a rule's state at the root of the document.
func (r *jsonRule) start() uint64 {
	if len(r.path) == 0 {
		return selected
	}
	return 1
}

// step is a rule's state at a member (obj, with its decoded key) or an
// element (with its index) of a value whose state is s.
func (r *jsonRule) step(s uint64, obj bool, key []byte, idx int) uint64 {
	if s&selected != 0 {
		return selected
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
	if next&(1<<len(r.path)) != 0 {
		return selected
	}
	return next
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
			if err := w.skip(); err != nil {
				return err
			}
			w.out = append(w.out[:0], "null"...)
			return w.end()
		}
	}
	if err := w.value(0, live); err != nil {
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

// value reads the value at the parser's position and writes it, masked.
// Its rules' states are the frame at base; live is false when every state
// is empty (nothing inside can be selected: the value is copied).
func (w *jsonWalk) value(base int, live bool) error {
	p := &w.p
	p.space()
	if p.i >= len(p.s) {
		return errJSON
	}
	switch c := p.s[p.i]; {
	case c == '{' || c == '[':
		return w.container(base, live, c)
	case c == '"':
		start := p.i
		esc, err := p.skipStr()
		if err != nil {
			return err
		}
		return w.scalar(base, live, jscalar{kind: '"', raw: p.s[start:p.i], esc: esc})
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		if !p.number() {
			return errJSON
		}
		return w.scalar(base, live, jscalar{kind: 'n', raw: p.s[start:p.i]})
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(p.s)-p.i >= len(lit) && string(p.s[p.i:p.i+len(lit)]) == lit {
			kind := byte('b')
			if lit == "null" {
				kind = 'z'
			}
			raw := p.s[p.i : p.i+len(lit)]
			p.i += len(lit)
			return w.scalar(base, live, jscalar{kind: kind, raw: raw})
		}
	}
	return errJSON
}

// scalar masks a string, number, boolean or null with every rule that
// selects it, in order, and writes the result.
func (w *jsonWalk) scalar(base int, live bool, v jscalar) error {
	if live {
		for i := range w.rules {
			if w.states[base+i] == selected {
				if err := w.rules[i].maskScalar(&v); err != nil {
					return err
				}
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

// container reads an object or array, writing the members that stay.
func (w *jsonWalk) container(base int, live bool, open byte) error {
	p := &w.p
	p.depth++
	if p.depth > maxJSONDepth {
		return invalid("JSON nested too deeply")
	}
	defer func() { p.depth-- }()
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	p.i++
	w.out = append(w.out, open)
	p.space()
	if p.i < len(p.s) && p.s[p.i] == closer {
		p.i++
		w.out = append(w.out, closer)
		return nil
	}
	n := len(w.rules)
	child := base + n
	if live && len(w.states) < child+n {
		w.states = append(w.states, make([]uint64, child+n-len(w.states))...)
	}
	written := 0
	for idx := 0; ; idx++ {
		var key, keyRaw []byte
		if open == '{' {
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return errJSON
			}
			start := p.i
			esc, err := p.skipStr()
			if err != nil {
				return err
			}
			keyRaw = p.s[start:p.i]
			key = keyRaw[1 : len(keyRaw)-1]
			if esc {
				sub := jsonParser{s: keyRaw}
				key, _ = sub.strBytes()
				keyRaw = nil // written again from the decoded key
			}
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return errJSON
			}
			p.i++
		}
		childLive, drop := false, false
		if live {
			for i := range w.rules {
				s := w.rules[i].step(w.states[base+i], open == '{', key, idx)
				if s == selected && w.rules[i].drop {
					drop = true
				}
				w.states[child+i] = s
				childLive = childLive || s != 0
			}
		}
		if drop {
			if err := w.skip(); err != nil {
				return err
			}
		} else {
			if written > 0 {
				w.out = append(w.out, ", "...)
			}
			written++
			if open == '{' {
				if keyRaw != nil {
					w.out = append(w.out, keyRaw...)
				} else {
					w.out = AppendJSONString(w.out, key)
				}
				w.out = append(w.out, ": "...)
			}
			if err := w.value(child, childLive); err != nil {
				return err
			}
		}
		p.space()
		if p.i >= len(p.s) {
			return errJSON
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case closer:
			p.i++
			w.out = append(w.out, closer)
			return nil
		default:
			return errJSON
		}
	}
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
	out, err := t.Transform(Value{Text: in})
	if err != nil {
		return err
	}
	// SQL NULL becomes JSON null; a number stays a number when its rule
	// gives a JSON number, else it becomes a string.
	switch {
	case out.State == Null:
		*v = jscalar{kind: 'z', raw: []byte("null")}
	case asNumber && isJSONNumber(out.Text):
		*v = jscalar{kind: 'n', raw: out.Text}
	default:
		*v = jscalar{kind: '"', str: out.Text, dirty: true}
	}
	return nil
}

// skip checks the value at the parser's position and moves past it,
// leaving nothing in the output.
func (w *jsonWalk) skip() error {
	mark := len(w.out)
	err := w.value(0, false)
	w.out = w.out[:mark]
	return err
}
