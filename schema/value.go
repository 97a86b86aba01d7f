package schema

// State says whether a Value holds data.
type State uint8

const (
	// Present: Text holds the value in PostgreSQL text format (possibly empty).
	Present State = iota
	// Null: the SQL NULL.
	Null
	// Unchanged: an unchanged TOASTed value in a logical replication UPDATE.
	// It carries no data; the target keeps what it has. Transformers never
	// see it: the Plan passes it through.
	Unchanged
)

// Value is one column value in PostgreSQL text format.
//
// A transformer may return a Value whose Text aliases the input's Text, so
// callers must not modify input buffers while outputs are in use.
type Value struct {
	Text  []byte
	State State
}

// Text returns a present value holding s.
func Text(s string) Value { return Value{Text: []byte(s)} }

// Bytes returns a present value holding b (not copied).
func Bytes(b []byte) Value { return Value{Text: b} }

// SQLNull returns the SQL NULL.
func SQLNull() Value { return Value{State: Null} }

// IsNull reports whether v is the SQL NULL.
func (v Value) IsNull() bool { return v.State == Null }

// String is for tests and the try command; it never appears in logs.
func (v Value) String() string {
	switch v.State {
	case Null:
		return "NULL"
	case Unchanged:
		return "(unchanged)"
	}
	return string(v.Text)
}
