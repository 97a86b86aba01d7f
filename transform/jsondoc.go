package transform

import (
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// jnode is a parsed JSON value. Objects keep their member order (and, for
// json, duplicate keys); unmodified scalars keep their original text.
//
// The parser allocates little: nodes come from a slab, and strings and
// keys point into the input (which outlives the tree: a Transform call);
// only strings with escapes are decoded, and only when they are read.
type jnode struct {
	kind byte   // '{', '[', '"', 'n' number, 'b' boolean, 'z' null
	raw  []byte // scalars: the text as written (strings with their quotes)
	esc  bool   // a string or key with escapes: decode it to read it
	// keys are the object's keys, decoded; keyRaw their text as written
	// (with quotes), or nil where it must be encoded again (escapes).
	keys   [][]byte
	keyRaw [][]byte
	vals   []*jnode // object member values, array elements
	str    []byte   // a masked string's new value (dirty)
	dirty  bool     // a string whose value changed: encode str
	// masked is the id of the last json rule that masked this value, so
	// that a rule masks each value once.
	masked int
}

// text is a string node's value.
func (n *jnode) text() []byte {
	if n.dirty {
		return n.str
	}
	inner := n.raw[1 : len(n.raw)-1]
	if !n.esc {
		return inner
	}
	p := jsonParser{s: n.raw}
	b, _ := p.strBytes()
	return b
}

// maxJSONDepth bounds nesting so a hostile document cannot exhaust the stack.
const maxJSONDepth = 10000

var errJSON = invalid("not valid JSON")

type jsonParser struct {
	s     []byte
	i     int
	depth int
	slab  []jnode
	// keys, keyRaw and vals are stacks of the members of the containers
	// being parsed.
	keys, keyRaw [][]byte
	vals         []*jnode
}

// node returns a zeroed node from the parser's slab.
func (p *jsonParser) node(kind byte) *jnode {
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]jnode, 0, min(64, max(8, 2*cap(p.slab))))
	}
	p.slab = p.slab[:len(p.slab)+1]
	n := &p.slab[len(p.slab)-1]
	n.kind = kind
	return n
}

func parseJSON(s []byte) (*jnode, error) {
	p := jsonParser{s: s}
	n, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, errJSON
	}
	return n, nil
}

func (p *jsonParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value() (*jnode, error) {
	p.space()
	if p.i >= len(p.s) {
		return nil, errJSON
	}
	switch c := p.s[p.i]; {
	case c == '{' || c == '[':
		return p.container(c)
	case c == '"':
		start := p.i
		esc, err := p.skipStr()
		if err != nil {
			return nil, err
		}
		n := p.node('"')
		n.raw, n.esc = p.s[start:p.i], esc
		return n, nil
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		if !p.number() {
			return nil, errJSON
		}
		n := p.node('n')
		n.raw = p.s[start:p.i]
		return n, nil
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(p.s)-p.i >= len(lit) && string(p.s[p.i:p.i+len(lit)]) == lit {
			kind := byte('b')
			if lit == "null" {
				kind = 'z'
			}
			n := p.node(kind)
			n.raw = p.s[p.i : p.i+len(lit)]
			p.i += len(lit)
			return n, nil
		}
	}
	return nil, errJSON
}

func (p *jsonParser) container(open byte) (*jnode, error) {
	p.depth++
	if p.depth > maxJSONDepth {
		return nil, invalid("JSON nested too deeply")
	}
	defer func() { p.depth-- }()
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	n := p.node(open)
	p.i++
	p.space()
	if p.i < len(p.s) && p.s[p.i] == closer {
		p.i++
		return n, nil
	}
	// Members gather on the parser's stacks, then move into slices of
	// their exact size: one allocation each instead of one per doubling.
	kh, vh := len(p.keys), len(p.vals)
	defer func() { p.keys, p.keyRaw, p.vals = p.keys[:kh], p.keyRaw[:kh], p.vals[:vh] }()
	for {
		if open == '{' {
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return nil, errJSON
			}
			start := p.i
			esc, err := p.skipStr()
			if err != nil {
				return nil, err
			}
			raw := p.s[start:p.i]
			key, keyRaw := raw[1:len(raw)-1], raw
			if esc {
				sub := jsonParser{s: raw}
				key, _ = sub.strBytes()
				keyRaw = nil
			}
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, errJSON
			}
			p.i++
			p.keys = append(p.keys, key)
			p.keyRaw = append(p.keyRaw, keyRaw)
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.vals = append(p.vals, v)
		p.space()
		if p.i >= len(p.s) {
			return nil, errJSON
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case closer:
			p.i++
			n.vals = slices.Clone(p.vals[vh:])
			if open == '{' {
				n.keys, n.keyRaw = slices.Clone(p.keys[kh:]), slices.Clone(p.keyRaw[kh:])
			}
			return n, nil
		default:
			return nil, errJSON
		}
	}
}

// skipStr checks the string literal at p.i and moves past it, reporting
// whether it holds escapes.
func (p *jsonParser) skipStr() (esc bool, err error) {
	start := p.i
	p.i++ // opening quote
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '"':
			p.i++
			return false, nil
		case c < 0x20:
			return false, errJSON
		case c == '\\':
			// Decode it to check its escapes (and move past it).
			p.i = start
			if _, err := p.strBytes(); err != nil {
				return false, err
			}
			return true, nil
		}
		p.i++
	}
	return false, errJSON
}

// strBytes reads the string literal at p.i and decodes it.
func (p *jsonParser) strBytes() ([]byte, error) {
	p.i++ // opening quote
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '"' {
			b := p.s[start:p.i]
			p.i++
			return b, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		p.i++
	}
	buf := append([]byte(nil), p.s[start:p.i]...)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return buf, nil
		case c < 0x20:
			return nil, errJSON
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			return nil, errJSON
		}
		e := p.s[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, errJSON
			}
			if utf16.IsSurrogate(r) {
				if p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					r2, ok := p.hex4()
					if d := utf16.DecodeRune(r, r2); ok && d != utf8.RuneError {
						r = d
					} else {
						p.i = save
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, errJSON
		}
	}
	return nil, errJSON
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for _, c := range p.s[p.i : p.i+4] {
		v, ok := fromHex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	p.i += 4
	return r, true
}

// number reads a JSON number at p.i.
func (p *jsonParser) number() bool {
	s, i := p.s, p.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	p.i = i
	return true
}

// appendJSON encodes n the way jsonb prints: ", " between items, ": "
// after keys, and string escapes as PostgreSQL's escape_json writes them.
func appendJSON(dst []byte, n *jnode) []byte {
	switch n.kind {
	case '{':
		dst = append(dst, '{')
		for i, k := range n.keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			if raw := n.keyRaw[i]; raw != nil {
				dst = append(dst, raw...)
			} else {
				dst = AppendJSONString(dst, k)
			}
			dst = append(dst, ": "...)
			dst = appendJSON(dst, n.vals[i])
		}
		return append(dst, '}')
	case '[':
		dst = append(dst, '[')
		for i, v := range n.vals {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendJSON(dst, v)
		}
		return append(dst, ']')
	case '"':
		if n.dirty {
			return AppendJSONString(dst, n.str)
		}
	}
	return append(dst, n.raw...)
}

// AppendJSONString appends s as a JSON string, escaped as PostgreSQL
// does (invalid UTF-8 becomes U+FFFD).
func AppendJSONString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := decodeRune(s[i:])
			dst = utf8.AppendRune(dst, r) // invalid bytes become U+FFFD
			i += size
			continue
		}
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, `\u00`...)
			dst = append(dst, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		}
		i++
	}
	return append(dst, '"')
}

// isJSONNumber reports whether s is a valid JSON number literal.
func isJSONNumber(s []byte) bool {
	p := jsonParser{s: s}
	return p.number() && p.i == len(s)
}

func decodeRune[T string | []byte](s T) (rune, int) {
	switch v := any(s).(type) {
	case string:
		return utf8.DecodeRuneInString(v)
	case []byte:
		return utf8.DecodeRune(v)
	}
	return utf8.RuneError, 1
}
