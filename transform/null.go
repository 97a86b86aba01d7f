package transform

import "pgveil/schema"

// null replaces every value with NULL; the column stays in the replica.
type null struct{}

func (null) Transform(schema.Value) (schema.Value, error) {
	return schema.Value{State: schema.Null}, nil
}

func nullSpec() *Spec {
	return &Spec{
		Name:       "null",
		Doc:        "Replaces the value with NULL; the column stays in the replica (nullable there even when NOT NULL in production).",
		WholeValue: true,
		New: func(schema.Column, Args, *Keys, *Registry) (Transformer, error) {
			return null{}, nil
		},
	}
}
