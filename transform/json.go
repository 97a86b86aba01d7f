package transform

import (
	"errors"
	"fmt"
)

// jsonT applies rules at JSON paths inside json and jsonb values:
// {json: {"$.address.street": {fake: street}, "$.ssn": drop}}. Members no
// path names are kept as they are.
//
// At a path, drop removes the member (or array element), null sets JSON
// null, and any other rule masks the value: strings through the rule as
// built for text (or, when the rule only fits dates or numbers, as built
// for those: {truncate: year} on "2024-03-15"), numbers through the rule
// as built for numeric when it fits (hash keeps integers as integers),
// else as text. A path that selects an object or array masks every string
// and number inside it. Paths are applied in the order written; a value
// that one path selects more than once (through $..key on nested keys, or
// inside a selected object) is masked once by that path.
type jsonT struct {
	paths []jsonRule
}

type jsonRule struct {
	id   int // 1 + the rule's index, to mark the values it masked
	path jsonPath
	drop bool
	// str masks strings; num masks numbers (nil: numbers go through str
	// and become strings).
	str, num Transformer
}

func jsonSpec() *Spec {
	return &Spec{
		Name:   "json",
		Doc:    `Masks values at JSON paths in json and jsonb columns ({json: {"$.address.street": {fake: street}, "$.items[*].email": hash, "$.ssn": drop}}); the rest of the document is kept.`,
		Inline: true,
		Params: []Param{
			{Name: "paths", Kind: ParamRules, Doc: "JSON path to rule: $.key, $[\"key\"], $[0], $[*], $.*, $..key."},
		},
		Check: func(a Args) error {
			rules, _ := a["paths"].([]PathRule)
			if len(rules) == 0 {
				return errors.New(`give at least one path, as in {json: {"$.email": {fake: email}}}`)
			}
			for _, pr := range rules {
				p, err := parseJSONPath(pr.Path)
				if err != nil {
					return &PosError{Line: pr.Line, Col: pr.Col, Err: err}
				}
				if pr.Rule.Name == "json" {
					return &PosError{Line: pr.Rule.Line, Col: pr.Rule.Col, Err: errors.New("json rules do not nest; write the full path instead")}
				}
				if len(p) == 0 && pr.Rule.Name == "drop" {
					return &PosError{Line: pr.Rule.Line, Col: pr.Rule.Col, Err: errors.New("$ is the whole document: drop the column instead")}
				}
			}
			return nil
		},
		New: newJSON,
	}
}

func newJSON(c Column, a Args, k *Keys, r *Registry) (Transformer, error) {
	if c.Type.Kind != KindJSON && c.Type.Kind != KindJSONB {
		return nil, fmt.Errorf("json applies to json and jsonb columns, not to %s", c.Type)
	}
	var out jsonT
	for _, pr := range a["paths"].([]PathRule) {
		p, err := parseJSONPath(pr.Path)
		if err != nil {
			return nil, &PosError{Line: pr.Line, Col: pr.Col, Err: err}
		}
		jr := jsonRule{id: len(out.paths) + 1, path: p}
		at := func(t Type) Column {
			return Column{Table: c.Table, Name: c.Name + pr.Path, Type: t}
		}
		text, textErr := r.Build(pr.Rule, at(MustType("text")), k)
		num, numErr := r.Build(pr.Rule, at(MustType("numeric")), k)
		switch {
		case textErr == nil && IsDrop(text):
			jr.drop = true
		case textErr == nil:
			jr.str = text
			if numErr == nil {
				jr.num = num
			}
		default:
			// Rules that only fit dates ({truncate: year}, {noise: 30d})
			// or numbers ({noise: 0.1}) mask strings holding those.
			if t, err := r.Build(pr.Rule, at(MustType("timestamptz")), k); err == nil {
				jr.str = t
			} else if numErr == nil {
				jr.str, jr.num = num, num // strings must hold numbers
			} else {
				return nil, &PosError{Line: pr.Rule.Line, Col: pr.Rule.Col, Err: fmt.Errorf("at %s: %w", pr.Path, textErr)}
			}
		}
		out.paths = append(out.paths, jr)
	}
	return out, nil
}

func (j jsonT) Transform(v Value) (Value, error) {
	doc, err := parseJSON(v.Text)
	if err != nil {
		return Value{}, err
	}
	for i := range j.paths {
		r := &j.paths[i]
		remove, err := r.apply(doc, r.path)
		if err != nil {
			return Value{}, err
		}
		if remove { // only a root path can ask for this, and Check forbids drop there
			return Value{Text: []byte("null")}, nil
		}
	}
	return Value{Text: appendJSON(make([]byte, 0, len(v.Text)+16), doc)}, nil
}

// apply runs the rule on what path selects under n; it returns true when
// n itself must be removed from its parent.
func (r *jsonRule) apply(n *jnode, path jsonPath) (bool, error) {
	if len(path) == 0 {
		if r.drop {
			return true, nil
		}
		return false, r.mask(n)
	}
	seg, rest := path[0], path[1:]
	switch seg.kind {
	case segKey:
		if n.kind != '{' {
			return false, nil
		}
		for i := 0; i < len(n.keys); i++ {
			if string(n.keys[i]) != seg.key {
				continue
			}
			rm, err := r.apply(n.vals[i], rest)
			if err != nil {
				return false, err
			}
			if rm {
				n.removeAt(i)
				i--
			}
		}
	case segIndex:
		if n.kind != '[' || seg.index >= len(n.vals) {
			return false, nil
		}
		rm, err := r.apply(n.vals[seg.index], rest)
		if err != nil {
			return false, err
		}
		if rm {
			n.removeAt(seg.index)
		}
	case segAll:
		if n.kind != '{' && n.kind != '[' {
			return false, nil
		}
		for i := 0; i < len(n.vals); i++ {
			rm, err := r.apply(n.vals[i], rest)
			if err != nil {
				return false, err
			}
			if rm {
				n.removeAt(i)
				i--
			}
		}
	case segDeep:
		for i := 0; i < len(n.vals); i++ {
			if n.kind == '{' && string(n.keys[i]) == seg.key {
				rm, err := r.apply(n.vals[i], rest)
				if err != nil {
					return false, err
				}
				if rm {
					n.removeAt(i)
					i--
					continue
				}
			}
			if _, err := r.apply(n.vals[i], path); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

func (n *jnode) removeAt(i int) {
	if n.kind == '{' {
		n.keys = append(n.keys[:i], n.keys[i+1:]...)
		n.keyRaw = append(n.keyRaw[:i], n.keyRaw[i+1:]...)
	}
	n.vals = append(n.vals[:i], n.vals[i+1:]...)
}

// mask applies the rule to a selected value, in place, unless it did
// already.
func (r *jsonRule) mask(n *jnode) error {
	if n.masked == r.id {
		return nil
	}
	if err := r.maskOnce(n); err != nil {
		return err
	}
	n.masked = r.id
	return nil
}

func (r *jsonRule) maskOnce(n *jnode) error {
	switch n.kind {
	case '{', '[':
		for _, v := range n.vals {
			if err := r.mask(v); err != nil {
				return err
			}
		}
		return nil
	case 'z':
		return nil
	case 'n':
		if r.num != nil {
			out, err := r.num.Transform(Value{Text: n.raw})
			if err != nil {
				return err
			}
			n.set(out, true)
			return nil
		}
		out, err := r.str.Transform(Value{Text: n.raw})
		if err != nil {
			return err
		}
		n.set(out, false)
		return nil
	case 'b':
		out, err := r.str.Transform(Value{Text: n.raw})
		if err != nil {
			return err
		}
		n.set(out, false)
		return nil
	}
	out, err := r.str.Transform(Value{Text: n.text()})
	if err != nil {
		return err
	}
	n.set(out, false)
	return nil
}

// set stores a masked value: SQL NULL becomes JSON null; a number stays a
// number when asNumber and the output is a JSON number, else a string.
func (n *jnode) set(v Value, asNumber bool) {
	switch {
	case v.State == Null:
		*n = jnode{kind: 'z', raw: []byte("null")}
	case asNumber && isJSONNumber(v.Text):
		*n = jnode{kind: 'n', raw: v.Text}
	default:
		*n = jnode{kind: '"', str: v.Text, dirty: true}
	}
}
