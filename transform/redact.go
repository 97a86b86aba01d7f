package transform

import (
	"fmt"
	"pgveil/schema"
	"slices"
)

// redactedText is what a bare `redact` writes into a text column.
const redactedText = "REDACTED"

// redact replaces every non-NULL value with one constant, checked against
// the column's type when the plan is built.
type redact struct{ value []byte }

func (r redact) Transform(schema.Value) (schema.Value, error) {
	return schema.Value{Text: r.value}, nil
}

func redactSpec() *Spec {
	return &Spec{
		Name: "redact",
		Doc:  `Replaces every non-NULL value with a constant of the column's type ({redact: "n/a"}, {redact: 0}); bare redact writes REDACTED into text columns.`,
		Params: []Param{
			{Name: "value", Kind: ParamString, Doc: "The constant, in PostgreSQL text form."},
		},
		Shorthand: func(any) string { return "value" },
		New: func(c schema.Column, a Args, _ *Keys, _ *Registry) (Transformer, error) {
			if !a.Has("value") {
				if c.Type.Kind != schema.KindText {
					return nil, fmt.Errorf("redact on %s needs a value of that type, for example {redact: %s}", c.Type, exampleLiteral(c.Type))
				}
				a = Args{"value": redactedText}
			}
			s, err := checkLiteral(c.Type, a.String("value", ""))
			if err != nil {
				return nil, err
			}
			// Clipped: every output shares this array, so a caller that
			// appends to one must get a copy, not write past its end.
			return redact{value: slices.Clip([]byte(s))}, nil
		},
	}
}

func exampleLiteral(t schema.Type) string {
	switch t.Kind {
	case schema.KindInt, schema.KindNumeric, schema.KindFloat:
		return "0"
	case schema.KindBool:
		return "false"
	case schema.KindDate:
		return "1970-01-01"
	case schema.KindTimestamp, schema.KindTimestampTZ:
		return `"1970-01-01 00:00:00"`
	case schema.KindUUID:
		return "00000000-0000-0000-0000-000000000000"
	case schema.KindJSON, schema.KindJSONB:
		return `"{}"`
	case schema.KindInet:
		return "0.0.0.0"
	}
	return `"..."`
}
