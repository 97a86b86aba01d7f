package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"pgveil/schema"
	"pgveil/transform"
)

// Values the tests put in the environment. The passwords and the secret
// must never appear in a problem or in printed configuration.
const (
	testSecret     = "s3cr3t-0123456789-abcdefghij-KLMNOP" // 35 bytes
	testSourcePass = "Pw-source-9f8e7d"
	testTargetPass = "Pw-target-1a2b3c"
)

func testEnvMap() map[string]string {
	return map[string]string{
		"SOURCE_DSN":    "postgres://app:" + testSourcePass + "@prod.internal:5432/shop?sslmode=require",
		"TARGET_DSN":    "host=analytics user=pgveil password='" + testTargetPass + "' dbname=copy",
		"PGVEIL_SECRET": testSecret,
		"SHORT_SECRET":  "Short-Pw-1",
		"EMPTY":         "",
		"LEN":           "3",
		"RATIO":         "0.25",
		"RULE":          "hash",
		"BAD_RULE":      "hsh",
		"READER":        "metabase_ro",
		"SLOT":          "pgveil_slot",
	}
}

func mapEnv(m map[string]string) LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func testEnv() LookupEnv { return mapEnv(testEnvMap()) }

func identity(v schema.Value) (schema.Value, error) { return v, nil }

func newIdentity(schema.Column, transform.Args, *transform.Keys, *transform.Registry) (transform.Transformer, error) {
	return transform.Func(identity), nil
}

// testRegistry holds the builtin keep, drop, null and hash, and small
// stand-ins for the other transformers, so that these tests do not depend
// on the real transformers' parameters. kitchen has one parameter of each
// kind.
func testRegistry() *transform.Registry {
	b := transform.Builtin()
	positive := func(v any) error {
		if i, ok := v.(int64); ok && i < 1 {
			return errors.New("must be at least 1")
		}
		return nil
	}
	textOnly := func(name string) func(schema.Column, transform.Args, *transform.Keys, *transform.Registry) (transform.Transformer, error) {
		return func(c schema.Column, _ transform.Args, _ *transform.Keys, _ *transform.Registry) (transform.Transformer, error) {
			if c.Type.Kind != schema.KindText {
				return nil, fmt.Errorf("%s applies to text columns, not to %s", name, c.Type)
			}
			return transform.Func(identity), nil
		}
	}
	return transform.NewRegistry(
		b.Spec("keep"), b.Spec("drop"), b.Spec("null"), b.Spec("hash"),
		&transform.Spec{
			Name: "fake",
			Params: []transform.Param{
				{Name: "kind", Kind: transform.ParamString, Enum: []string{"email", "name", "street", "phone"}},
				{Name: "unique", Kind: transform.ParamBool},
			},
			Shorthand: func(v any) string {
				if _, ok := v.(string); ok {
					return "kind"
				}
				return ""
			},
			Check: func(a transform.Args) error {
				if !a.Has("kind") {
					return errors.New("kind is required, for example {fake: email}")
				}
				return nil
			},
			New: textOnly("fake"),
			Warn: func(c schema.Column, a transform.Args) string {
				if c.Unique && !c.PrimaryKey && !a.Bool("unique", false) {
					return "values may collide on a unique column; set unique: true"
				}
				return ""
			},
		},
		&transform.Spec{
			Name: "truncate",
			Params: []transform.Param{
				{Name: "length", Kind: transform.ParamInt, Check: positive},
				{Name: "unit", Kind: transform.ParamString, Enum: []string{"year", "month", "day"}},
				{Name: "step", Kind: transform.ParamNumber},
			},
			Shorthand: func(v any) string {
				switch v.(type) {
				case int64:
					return "length"
				case float64:
					return "step"
				case string:
					return "unit"
				}
				return ""
			},
			Check: func(a transform.Args) error {
				n := 0
				for _, p := range []string{"length", "unit", "step"} {
					if a.Has(p) {
						n++
					}
				}
				if n != 1 {
					return errors.New("give exactly one of length, unit or step")
				}
				return nil
			},
			New: func(c schema.Column, a transform.Args, _ *transform.Keys, _ *transform.Registry) (transform.Transformer, error) {
				if a.Has("unit") && c.Type.Kind != schema.KindDate && c.Type.Kind != schema.KindTimestampTZ {
					return nil, fmt.Errorf("truncate to a unit applies to dates, not to %s", c.Type)
				}
				return transform.Func(identity), nil
			},
		},
		&transform.Spec{
			Name: "partial",
			Params: []transform.Param{
				{Name: "keep_first", Kind: transform.ParamInt},
				{Name: "keep_last", Kind: transform.ParamInt},
				{Name: "mask", Kind: transform.ParamChar, Default: "*"},
			},
			Check: func(a transform.Args) error {
				if !a.Has("mask") {
					return errors.New("mask has no default")
				}
				if a.Int("keep_first", 0)+a.Int("keep_last", 0) == 0 {
					return errors.New("set keep_first or keep_last")
				}
				return nil
			},
			New: textOnly("partial"),
		},
		&transform.Spec{
			Name: "noise",
			Params: []transform.Param{
				{Name: "ratio", Kind: transform.ParamNumber},
				{Name: "duration", Kind: transform.ParamDuration},
			},
			Shorthand: func(v any) string {
				switch v.(type) {
				case int64, float64:
					return "ratio"
				case string:
					return "duration"
				}
				return ""
			},
			New: newIdentity,
		},
		&transform.Spec{
			Name:      "redact",
			Params:    []transform.Param{{Name: "value", Kind: transform.ParamString}},
			Shorthand: func(any) string { return "value" },
			New:       newIdentity,
		},
		&transform.Spec{
			Name:   "json",
			Inline: true,
			Params: []transform.Param{{Name: "paths", Kind: transform.ParamRules}},
			Check: func(a transform.Args) error {
				prs, _ := a["paths"].([]transform.PathRule)
				if len(prs) == 0 {
					return errors.New("give at least one path")
				}
				for _, pr := range prs {
					if strings.Contains(pr.Path, "..") {
						return &transform.PosError{Line: pr.Line, Col: pr.Col, Err: errors.New("recursive descent is not supported here")}
					}
				}
				return nil
			},
			New: func(c schema.Column, a transform.Args, k *transform.Keys, r *transform.Registry) (transform.Transformer, error) {
				if c.Type.Kind != schema.KindJSON && c.Type.Kind != schema.KindJSONB {
					return nil, fmt.Errorf("json applies to json and jsonb columns, not to %s", c.Type)
				}
				for _, pr := range a["paths"].([]transform.PathRule) {
					if _, err := r.Build(pr.Rule, schema.Column{Name: c.Name + pr.Path, Type: schema.MustType("text")}, k); err != nil {
						return nil, &transform.PosError{Line: pr.Rule.Line, Col: pr.Rule.Col, Err: fmt.Errorf("at %s: %w", pr.Path, err)}
					}
				}
				return transform.Func(identity), nil
			},
		},
		&transform.Spec{
			Name: "kitchen",
			Params: []transform.Param{
				{Name: "n", Kind: transform.ParamInt},
				{Name: "x", Kind: transform.ParamNumber},
				{Name: "s", Kind: transform.ParamString},
				{Name: "c", Kind: transform.ParamChar},
				{Name: "b", Kind: transform.ParamBool},
				{Name: "d", Kind: transform.ParamDuration},
				{Name: "r", Kind: transform.ParamRules},
			},
			New: newIdentity,
		},
	)
}

// want is an expected problem: "LINE:COL: substring of the message".
// COL may be 0 (YAML syntax errors have none).
type want string

var wantRE = regexp.MustCompile(`^(\d+):(\d+): (.+)$`)

func (w want) parse(t testing.TB) (line, col int, sub string) {
	t.Helper()
	m := wantRE.FindStringSubmatch(string(w))
	if m == nil {
		t.Fatalf("bad expectation %q: want LINE:COL: substring", w)
	}
	line, _ = strconv.Atoi(m[1])
	col, _ = strconv.Atoi(m[2])
	return line, col, m[3]
}

// checkProblems reports unless ps are exactly the wanted problems: same
// count, and each wanted position and substring matched by its own
// problem. The substring is matched against Table.Column: Msg.
func checkProblems(t testing.TB, ps Problems, wants []want) {
	t.Helper()
	used := make([]bool, len(ps))
	ok := len(ps) == len(wants)
	for _, w := range wants {
		line, col, sub := w.parse(t)
		found := false
		for i, p := range ps {
			if !used[i] && p.Line == line && p.Col == col && strings.Contains(problemText(p), sub) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			ok = false
			t.Errorf("missing problem %s", w)
		}
	}
	if !ok {
		var b strings.Builder
		for i, p := range ps {
			mark := " "
			if !used[i] {
				mark = "+"
			}
			fmt.Fprintf(&b, "\n %s %d:%d: %s", mark, p.Line, p.Col, problemText(p))
		}
		t.Errorf("got %d problems, want %d:%s", len(ps), len(wants), b.String())
	}
}

// problemText is a problem as String prints it, without file and position.
func problemText(p Problem) string {
	p.File, p.Line, p.Col = "", 0, 0
	return p.String()
}

// problemsOf returns the Problems in err, failing the test when err is
// something else.
func problemsOf(t testing.TB, err error) Problems {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T, not Problems: %v", err, err)
	}
	return ps
}

func errorsUnwrapAll(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
