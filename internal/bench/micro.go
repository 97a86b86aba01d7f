package bench

import (
	"fmt"
	"testing"

	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

// Micro is one transformer micro-benchmark.
type Micro struct {
	Name        string  `json:"name"`
	NsPerOp     float64 `json:"ns_per_op"`
	AllocsPerOp int64   `json:"allocs_per_op"`
}

// microCases are the transformers users meet most, on typical values.
var microCases = []struct {
	name, rule, typ, value string
}{
	{"keep", "keep", "text", "2026-11-23 10:00:00+00"},
	{"hash (bigint key)", "hash", "bigint", "123456789"},
	{"hash (text, 20 bytes)", "hash", "text", "alice.martin@mail.de"},
	{"fake: email", "{fake: email}", "text", "alice.martin@example.com"},
	{"fake: name", "{fake: name}", "text", "Alice Martin"},
	{"truncate: year (date)", "{truncate: year}", "date", "1984-07-12"},
	{"partial: keep_last 2", "{partial: {keep_last: 2}}", "text", "+49 30 1234 5678"},
	{"noise: 0.05 (numeric)", "{noise: 0.05}", "numeric(12,2)", "1234.56"},
	{"json: 2 paths", `{json: {"$.address.street": {fake: street}, "$.ssn": drop}}`, "jsonb",
		`{"ssn": "123-45-6789", "address": {"city": "Berlin", "street": "Hauptstrasse 1", "zip": "10115"}, "tags": ["a", "b"]}`},
}

// Microbenchmarks runs the transformer micro-benchmarks in process.
func Microbenchmarks() ([]Micro, error) {
	keys, err := transform.NewKeys([]byte(benchSecret))
	if err != nil {
		return nil, err
	}
	reg := transform.Builtin()
	var out []Micro
	for _, c := range microCases {
		rule, err := rules.ParseRule(c.rule, reg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		tr, err := reg.Build(rule, schema.Column{Table: "bench", Name: "c", Type: schema.MustType(c.typ)}, keys)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		in := schema.Text(c.value)
		if _, err := tr.Transform(in); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		res := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = tr.Transform(in)
			}
		})
		out = append(out, Micro{Name: c.name, NsPerOp: float64(res.T.Nanoseconds()) / float64(res.N), AllocsPerOp: res.AllocsPerOp()})
	}
	return out, nil
}
