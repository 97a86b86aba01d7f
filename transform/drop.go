package transform

import (
	"errors"
	"pgveil/schema"
)

// drop leaves the column out of the publication and the replica, so its
// bytes never leave production; inside json it removes the key.
type drop struct{}

func (drop) drops() {}

func (drop) Transform(schema.Value) (schema.Value, error) {
	return schema.Value{}, errors.New("a dropped column has no value")
}

func dropSpec() *Spec {
	return &Spec{
		Name:       "drop",
		Doc:        "Leaves the column out of the publication and the replica; in json, removes the key.",
		WholeValue: true,
		New: func(schema.Column, Args, *Keys, *Registry) (Transformer, error) {
			return drop{}, nil
		},
	}
}
