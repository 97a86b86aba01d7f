package transform

import "pgveil/schema"

// Transformer masks one value.
//
// Transform is called with present values only: the Plan keeps NULL as NULL
// and passes unchanged TOAST values through before a transformer sees them.
// Errors must not contain the value; the Plan adds the column's name.
type Transformer interface {
	Transform(v schema.Value) (schema.Value, error)
}

// Func adapts a function to the Transformer interface.
type Func func(schema.Value) (schema.Value, error)

// Transform calls f(v).
func (f Func) Transform(v schema.Value) (schema.Value, error) { return f(v) }

// Dropper is implemented by the drop transformer: the Plan leaves such a
// column out of the replica (and the publication), and the json transformer
// removes the key.
type Dropper interface {
	Transformer
	drops()
}

// IsDrop reports whether t removes its column or JSON key.
func IsDrop(t Transformer) bool {
	_, ok := t.(Dropper)
	return ok
}

// ValueError is a transformer's failure on one value. Its message says what
// was expected, never what was found.
type ValueError struct {
	Msg string
}

func (e *ValueError) Error() string { return e.Msg }

func invalid(msg string) error { return &ValueError{Msg: msg} }
