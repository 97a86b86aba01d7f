package transform

import "slices"

// This file holds the reference the one-pass json transformer is checked
// against: the document parsed into a tree, each path applied to the whole
// tree in the order written, then the tree encoded. It is slow and simple.
// Dropped values are marked, not removed, so that indices stay those of
// the document as it arrived.

// refJSON masks doc with rules the way jsonT must.
func refJSON(rules []jsonRule, doc []byte) ([]byte, error) {
	root, err := parseJSON(doc)
	if err != nil {
		return nil, err
	}
	// Drops first: a dropped value is never masked (so a rule that would
	// fail on it does not), then the other paths in the order written.
	for _, drops := range []bool{true, false} {
		for i := range rules {
			r := &rules[i]
			if r.drop != drops {
				continue
			}
			if len(r.path) == 0 && r.drop {
				return []byte("null"), nil
			}
			var err error
			if r.names {
				err = refNames(r, i+1, root, r.path)
			} else {
				err = refApply(r, i+1, root, r.path)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if refCollides(root) {
		return nil, errNameCollision
	}
	return appendJSON(nil, root), nil
}

// refNames masks the names of the members that path selects, once per
// rule.
func refNames(r *jsonRule, id int, n *jnode, path jsonPath) error {
	if n.dropped || len(path) == 0 {
		return nil
	}
	seg, rest := path[0], path[1:]
	for i, v := range n.vals {
		if v.dropped {
			continue
		}
		obj := n.kind == '{'
		match := false
		switch seg.kind {
		case segKey:
			match = obj && string(n.origKey(i)) == seg.key
		case segIndex:
			match = !obj && i == seg.index
		case segAll:
			match = true
		case segDeep:
			match = obj && string(n.origKey(i)) == seg.key
			if err := refNames(r, id, v, path); err != nil {
				return err
			}
		}
		if !match {
			continue
		}
		if len(rest) > 0 {
			if err := refNames(r, id, v, rest); err != nil {
				return err
			}
			continue
		}
		if !obj || n.nameMasked[i] == id {
			continue
		}
		n.nameMasked[i] = id
		name, err := r.maskName(n.keys[i])
		if err != nil {
			return err
		}
		n.keys[i], n.keyRaw[i] = name, nil
	}
	return nil
}

// refCollides reports whether an object holds two members, both kept,
// with equal names that were different names in the input.
func refCollides(n *jnode) bool {
	if n.kind == '{' {
		seen := map[string]string{}
		for i, k := range n.keys {
			if n.vals[i].dropped {
				continue
			}
			if from, ok := seen[string(k)]; ok && from != string(n.origKey(i)) {
				return true
			} else if !ok {
				seen[string(k)] = string(n.origKey(i))
			}
		}
	}
	for _, v := range n.vals {
		if !v.dropped && refCollides(v) {
			return true
		}
	}
	return false
}

// origKey is member i's name as it arrived.
func (n *jnode) origKey(i int) []byte { return n.orig[i] }

func refApply(r *jsonRule, id int, n *jnode, path jsonPath) error {
	if n.dropped {
		return nil
	}
	if len(path) == 0 {
		if r.drop {
			n.dropped = true
			return nil
		}
		return refMask(r, id, n)
	}
	seg, rest := path[0], path[1:]
	switch seg.kind {
	case segKey:
		if n.kind == '{' {
			for i := range n.vals {
				if string(n.origKey(i)) == seg.key {
					if err := refApply(r, id, n.vals[i], rest); err != nil {
						return err
					}
				}
			}
		}
	case segIndex:
		if n.kind == '[' && seg.index < len(n.vals) {
			return refApply(r, id, n.vals[seg.index], rest)
		}
	case segAll:
		for _, v := range n.vals {
			if err := refApply(r, id, v, rest); err != nil {
				return err
			}
		}
	case segDeep:
		for i, v := range n.vals {
			if n.kind == '{' && string(n.origKey(i)) == seg.key {
				if err := refApply(r, id, v, rest); err != nil {
					return err
				}
			}
			if err := refApply(r, id, v, path); err != nil {
				return err
			}
		}
	}
	return nil
}

// refMask masks a selected value and everything in it, once per rule.
func refMask(r *jsonRule, id int, n *jnode) error {
	if n.masked == id || n.dropped {
		return nil
	}
	n.masked = id
	switch n.kind {
	case '{', '[':
		for _, v := range n.vals {
			if err := refMask(r, id, v); err != nil {
				return err
			}
		}
		return nil
	}
	return r.maskScalar(&n.jscalar)
}

// treeParser parses a document into jnodes.
type treeParser struct {
	jsonParser
	slab []jnode
	// keys, keyRaw and vals are stacks of the members of the containers
	// being parsed.
	keys, keyRaw [][]byte
	vals         []*jnode
}

func parseJSON(s []byte) (*jnode, error) {
	p := treeParser{jsonParser: jsonParser{s: s}}
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

// jnode is a parsed JSON value. Objects keep their member order (and, for
// json, duplicate keys); unmodified scalars keep their original text.
//
// The parser allocates little: nodes come from a slab, and strings and
// keys point into the input (which outlives the tree: a Transform call);
// only strings with escapes are decoded, and only when they are read.
type jnode struct {
	jscalar // scalars: kind, text as written, and masked value
	// keys are the object's keys, decoded; keyRaw their text as written
	// (with quotes), or nil where it must be encoded again (escapes).
	keys   [][]byte
	keyRaw [][]byte
	// orig are the keys as they arrived; nameMasked the id of the last
	// json rule that masked each name.
	orig       [][]byte
	nameMasked []int
	vals       []*jnode // object member values, array elements
	// masked is the id of the last json rule that masked this value, so
	// that a rule masks each value once.
	masked  int
	dropped bool
}

// node returns a zeroed node from the parser's slab.
func (p *treeParser) node(kind byte) *jnode {
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]jnode, 0, min(64, max(8, 2*cap(p.slab))))
	}
	p.slab = p.slab[:len(p.slab)+1]
	n := &p.slab[len(p.slab)-1]
	n.kind = kind
	return n
}

func (p *treeParser) value() (*jnode, error) {
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

func (p *treeParser) container(open byte) (*jnode, error) {
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
			n.nameMasked = make([]int, len(n.vals))
			if open == '{' {
				n.keys, n.keyRaw = slices.Clone(p.keys[kh:]), slices.Clone(p.keyRaw[kh:])
				n.orig = slices.Clone(n.keys)
			}
			return n, nil
		default:
			return nil, errJSON
		}
	}
}

// appendJSON encodes n the way jsonb prints: ", " between items, ": "
// after keys, and string escapes as PostgreSQL's escape_json writes them.
func appendJSON(dst []byte, n *jnode) []byte {
	switch n.kind {
	case '{':
		dst = append(dst, '{')
		first := true
		for i, k := range n.keys {
			if n.vals[i].dropped {
				continue
			}
			if !first {
				dst = append(dst, ", "...)
			}
			first = false
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
		first := true
		for _, v := range n.vals {
			if v.dropped {
				continue
			}
			if !first {
				dst = append(dst, ", "...)
			}
			first = false
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
