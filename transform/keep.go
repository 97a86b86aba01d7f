package transform

import "pgveil/schema"

// keep copies the value as it is. Use it only for columns that hold no
// personal data: the replica gets the raw value.
type keep struct{}

func (keep) Transform(v schema.Value) (schema.Value, error) { return v, nil }

func keepSpec() *Spec {
	return &Spec{
		Name:       "keep",
		Doc:        "Copies the value unchanged. Only for columns that hold nothing personal.",
		WholeValue: true,
		KeySafe:    true,
		New: func(schema.Column, Args, *Keys, *Registry) (Transformer, error) {
			return keep{}, nil
		},
	}
}
