package transform

// null replaces every value with NULL; the column stays in the replica.
type null struct{}

func (null) Transform(Value) (Value, error) { return Value{State: Null}, nil }

func nullSpec() *Spec {
	return &Spec{
		Name:       "null",
		Doc:        "Replaces the value with NULL; the column stays in the replica (nullable there even when NOT NULL in production).",
		WholeValue: true,
		New: func(Column, Args, *Keys, *Registry) (Transformer, error) {
			return null{}, nil
		},
	}
}
