package transform

import (
	"errors"
	"fmt"
	"pgveil/schema"
	"strings"
	"sync"
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
// and number inside it. Paths select in the document as it arrived (a
// dropped element does not shift the indices of the others); a value that
// several paths select is masked by each, in the order written, and a
// value that one path selects more than once (through $..key on nested
// keys, or inside a selected object) is masked once by that path.
//
// Member names are structure, not content: a path never changes them,
// even one that selects a whole object. A path ending in ~ selects the
// names instead ({"$.contacts.*~": hash}: every name in contacts), masked
// as strings; masked names must stay distinct within their object, or the
// value fails (see jsonWalk.member).
type jsonT struct {
	paths []jsonRule
	// walks reuses the walk's stacks (states, frames, closers) across
	// values, which were most of json's allocations (issue 20).
	walks *sync.Pool
}

type jsonRule struct {
	path jsonPath
	drop bool
	// names: the path ended in ~ (path holds the steps before it): the
	// rule masks the names of the members the path selects.
	names bool
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
			{Name: "paths", Kind: ParamRules, Doc: "JSON path to rule: $.key, $[\"key\"], $[0], $[*], $.*, $..key; a path ending in ~ masks the names of the members it selects."},
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
				if isNamePath(p) {
					switch pr.Rule.Name {
					case "drop":
						return &PosError{Line: pr.Rule.Line, Col: pr.Rule.Col, Err: fmt.Errorf("%s selects names, which cannot be dropped alone; to remove the members, drop %s", pr.Path, strings.TrimSuffix(pr.Path, "~"))}
					case "null":
						return &PosError{Line: pr.Rule.Line, Col: pr.Rule.Col, Err: fmt.Errorf("%s selects names, which cannot be null; mask them with hash or {fake: {kind: ..., unique: true}}", pr.Path)}
					}
				}
			}
			return nil
		},
		New: newJSON,
		Warn: func(_ schema.Column, a Args) string {
			rules, _ := a["paths"].([]PathRule)
			for _, pr := range rules {
				if p, err := parseJSONPath(pr.Path); err == nil && isNamePath(p) && pr.Rule.Name == "fake" && !pr.Rule.Args.Bool("unique", false) {
					return fmt.Sprintf("%s: fake names may collide, and a document whose masked names collide fails; use hash or fake with unique: true", pr.Path)
				}
			}
			return ""
		},
	}
}

// isNamePath reports whether p ends in ~ (selects member names).
func isNamePath(p jsonPath) bool { return len(p) > 0 && p[len(p)-1].kind == segName }

func newJSON(c schema.Column, a Args, k *Keys, r *Registry) (Transformer, error) {
	if c.Type.Kind != schema.KindJSON && c.Type.Kind != schema.KindJSONB {
		return nil, fmt.Errorf("json applies to json and jsonb columns, not to %s", c.Type)
	}
	out := jsonT{walks: &sync.Pool{New: func() any { return new(jsonWalk) }}}
	for _, pr := range a["paths"].([]PathRule) {
		p, err := parseJSONPath(pr.Path)
		if err != nil {
			return nil, &PosError{Line: pr.Line, Col: pr.Col, Err: err}
		}
		jr := jsonRule{path: p}
		if isNamePath(p) {
			jr.path, jr.names = p[:len(p)-1], true
		}
		at := func(t schema.Type) schema.Column {
			return schema.Column{Table: c.Table, Name: c.Name + pr.Path, Type: t}
		}
		text, textErr := r.Build(pr.Rule, at(schema.MustType("text")), k)
		num, numErr := r.Build(pr.Rule, at(schema.MustType("numeric")), k)
		switch {
		case textErr == nil && IsDrop(text):
			jr.drop = true
		case jr.names && textErr == nil:
			jr.str = text // names are strings
		case textErr == nil:
			jr.str = text
			if numErr == nil {
				jr.num = num
			}
		default:
			// Rules that only fit dates ({truncate: year}, {noise: 30d})
			// or numbers ({noise: 0.1}) mask strings holding those.
			if t, err := r.Build(pr.Rule, at(schema.MustType("timestamptz")), k); err == nil {
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

func (j jsonT) Transform(v schema.Value) (schema.Value, error) {
	w := new(jsonWalk) // a jsonT built without newJSON, as tests do
	if j.walks != nil {
		w = j.walks.Get().(*jsonWalk)
		defer j.walks.Put(w)
	}
	w.p = jsonParser{s: v.Text}
	w.out = make([]byte, 0, len(v.Text)+16)
	w.rules = j.paths
	w.states, w.frames, w.plain, w.nameStack = w.states[:0], w.frames[:0], w.plain[:0], w.nameStack[:0]
	clear(w.names) // left over when a value failed inside a named object
	err := w.run()
	out := w.out
	// Drop what points into this value and its output before reuse.
	w.p, w.out, w.rules = jsonParser{}, nil, nil
	if err != nil {
		return schema.Value{}, err
	}
	return schema.Value{Text: out}, nil
}
