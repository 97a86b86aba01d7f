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

// invalid is a transformer's failure on one value: a MaskError with only
// its reason, which says what was expected, never what was found. The
// Plan names the column and rule.
func invalid(reason string) error { return &MaskError{Reason: reason} }
