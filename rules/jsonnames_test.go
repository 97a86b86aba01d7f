package rules

import (
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/transform"
)

// TestJSONNamePaths: rules on JSON member names ("$.contacts.*~") parse
// with the real transformers, and their mistakes are reported at their
// line and column like every rule's.
func TestJSONNamePaths(t *testing.T) {
	const head = "source: {dsn: x}\ntarget: {dsn: y}\nsecret: " + pgtest.Secret + "\ntables:\n  t:\n    columns:\n"
	good := head + `      doc:
        json:
          "$.contacts.*~": hash
          "$.contacts.*": {fake: email}
          "$..ids.*~": {fake: {kind: email, unique: true}}
`
	cfg, err := Parse("f.yaml", []byte(good), nil, transform.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if paths := cfg.Tables[0].Columns[0].Rule.Args["paths"].([]transform.PathRule); len(paths) != 3 || paths[0].Path != "$.contacts.*~" {
		t.Errorf("paths: %+v", paths)
	}
	for _, tt := range []struct {
		name, yaml string
		want       want
	}{
		{"drop a name", `      doc: {json: {"$.contacts.*~": drop}}` + "\n", `7:37: public.t.doc: json: $.contacts.*~ selects names, which cannot be dropped alone; to remove the members, drop $.contacts.*`},
		{"null a name", `      doc: {json: {"$.a~": null}}` + "\n", `7:28: public.t.doc: json: $.a~ selects names, which cannot be null`},
		{"~ inside", `      doc: {json: {"$.a~.b": hash}}` + "\n", `7:20: public.t.doc: json: JSON path $.a~.b: ~ ends a path`},
		{"root name", `      doc: {json: {"$~": hash}}` + "\n", `7:20: public.t.doc: json: JSON path $~: the document has no name`},
		{"element name", "      doc:\n        json:\n          \"$.a[2]~\": hash\n", `9:11: public.t.doc: json: JSON path $.a[2]~: [N] selects an array element, which has no name`},
	} {
		_, err := Parse("f.yaml", []byte(head+tt.yaml), nil, transform.Builtin())
		checkProblems(t, problemsOf(t, err), []want{tt.want})
	}
}
