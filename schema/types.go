package schema

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind groups PostgreSQL types by how their text form is masked.
type Kind uint8

// The kinds a transformer can be built for.
const (
	KindOther       Kind = iota // anything else: enums, composites, ranges, ...
	KindInt                     // smallint, integer, bigint (see Type.Bits)
	KindNumeric                 // numeric(p,s)
	KindFloat                   // real, double precision (see Type.Bits)
	KindText                    // text, varchar(n), char(n), citext, name
	KindBool                    // boolean
	KindDate                    // date
	KindTimestamp               // timestamp without time zone
	KindTimestampTZ             // timestamp with time zone
	KindTime                    // time with or without time zone
	KindInterval                // interval
	KindUUID                    // uuid
	KindBytea                   // bytea
	KindJSON                    // json
	KindJSONB                   // jsonb
	KindInet                    // inet, cidr
)

var kindNames = [...]string{"other", "integer", "numeric", "float", "text", "boolean", "date",
	"timestamp", "timestamptz", "time", "interval", "uuid", "bytea", "json", "jsonb", "inet"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Type is a column's PostgreSQL type, as format_type() prints it.
type Type struct {
	Name      string // canonical name without modifiers or array brackets, e.g. "character varying"
	Kind      Kind
	Bits      int // 16, 32 or 64 for integers; 32 or 64 for floats
	Length    int // characters for varchar(n) and char(n); 0 when unlimited
	Precision int // numeric(p,s): p, 0 when unconstrained
	Scale     int // numeric(p,s): s
	ArrayDims int // 0 for scalars; 1 or more for arrays (PostgreSQL does not enforce the number)
	// Mod is a modifier String prints but transformers do not need, as
	// written: "(3)" in "timestamp(3) with time zone".
	Mod string
}

// Elem returns the element type of an array type, or t itself.
func (t Type) Elem() Type {
	t.ArrayDims = 0
	return t
}

// IsArray reports whether t is an array type.
func (t Type) IsArray() bool { return t.ArrayDims > 0 }

// String prints t the way format_type() does.
func (t Type) String() string {
	var b strings.Builder
	name := t.Name
	var mod string
	switch {
	case t.Kind == KindText && t.Length > 0:
		mod = fmt.Sprintf("(%d)", t.Length)
	case t.Kind == KindNumeric && t.Precision > 0:
		mod = fmt.Sprintf("(%d,%d)", t.Precision, t.Scale)
	default:
		mod = t.Mod
	}
	// format_type puts the modifier before "with/without time zone".
	if base, zone, ok := strings.Cut(name, " with"); ok && mod != "" {
		b.WriteString(base + mod + " with" + zone)
	} else {
		b.WriteString(name)
		b.WriteString(mod)
	}
	for range t.ArrayDims {
		b.WriteString("[]")
	}
	return b.String()
}

type typeInfo struct {
	name string
	kind Kind
	bits int
}

// typeAliases maps every spelling we accept (format_type output, SQL
// standard names, internal names) to the canonical type.
var typeAliases = map[string]typeInfo{
	"smallint": {"smallint", KindInt, 16}, "int2": {"smallint", KindInt, 16},
	"integer": {"integer", KindInt, 32}, "int": {"integer", KindInt, 32}, "int4": {"integer", KindInt, 32},
	"bigint": {"bigint", KindInt, 64}, "int8": {"bigint", KindInt, 64},
	"smallserial": {"smallint", KindInt, 16}, "serial": {"integer", KindInt, 32}, "bigserial": {"bigint", KindInt, 64},
	"numeric": {"numeric", KindNumeric, 0}, "decimal": {"numeric", KindNumeric, 0},
	"real": {"real", KindFloat, 32}, "float4": {"real", KindFloat, 32},
	"double precision": {"double precision", KindFloat, 64}, "float8": {"double precision", KindFloat, 64}, "float": {"double precision", KindFloat, 64},
	"text": {"text", KindText, 0}, "citext": {"citext", KindText, 0}, "name": {"name", KindText, 0},
	"character varying": {"character varying", KindText, 0}, "varchar": {"character varying", KindText, 0},
	"character": {"character", KindText, 0}, "char": {"character", KindText, 0}, "bpchar": {"character", KindText, 0},
	"boolean": {"boolean", KindBool, 0}, "bool": {"boolean", KindBool, 0},
	"date":                        {"date", KindDate, 0},
	"timestamp without time zone": {"timestamp without time zone", KindTimestamp, 0}, "timestamp": {"timestamp without time zone", KindTimestamp, 0},
	"timestamp with time zone": {"timestamp with time zone", KindTimestampTZ, 0}, "timestamptz": {"timestamp with time zone", KindTimestampTZ, 0},
	"time without time zone": {"time without time zone", KindTime, 0}, "time": {"time without time zone", KindTime, 0},
	"time with time zone": {"time with time zone", KindTime, 0}, "timetz": {"time with time zone", KindTime, 0},
	"interval": {"interval", KindInterval, 0},
	"uuid":     {"uuid", KindUUID, 0},
	"bytea":    {"bytea", KindBytea, 0},
	"json":     {"json", KindJSON, 0},
	"jsonb":    {"jsonb", KindJSONB, 0},
	"inet":     {"inet", KindInet, 0}, "cidr": {"cidr", KindInet, 0},
}

// ParseType parses a type as format_type() prints it ("character varying(20)[]",
// "numeric(10,2)", "timestamp(3) with time zone") or as SQL spells it
// ("varchar(20)", "int8", "timestamptz"). Unknown names (enums, domains,
// composites) parse as KindOther.
func ParseType(s string) (Type, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Type{}, fmt.Errorf("empty type name")
	}
	var t Type
	for strings.HasSuffix(s, "[]") {
		t.ArrayDims++
		s = strings.TrimSpace(strings.TrimSuffix(s, "[]"))
	}
	// Enums, domains, composites and types pgveil does not model keep
	// their name as written (case and quotes included) and modifiers.
	declared := s
	s = strings.ToLower(s)
	var modText string
	// Pull out a "(...)" modifier wherever it is ("timestamp(3) with time zone").
	var mods []int
	var modErr error // only an error for the types pgveil models
	if i := strings.IndexByte(s, '('); i >= 0 {
		j := strings.IndexByte(s[i:], ')')
		if j < 0 {
			modErr = fmt.Errorf("type %q: unbalanced parenthesis", s)
			j = len(s) - i - 1
		}
		modText = s[i : i+j+1]
		for _, part := range strings.Split(s[i+1:i+j], ",") {
			n, err := strconv.Atoi(strings.TrimSpace(part))
			if (err != nil || n < 0) && modErr == nil {
				modErr = fmt.Errorf("type %q: bad modifier", s)
			}
			mods = append(mods, n)
		}
		s = strings.Join(strings.Fields(s[:i]+" "+s[i+j+1:]), " ")
	}
	info, ok := typeAliases[s]
	if !ok {
		t.Name, t.Kind = declared, KindOther
		return t, nil
	}
	if modErr != nil {
		return Type{}, modErr
	}
	t.Name, t.Kind, t.Bits = info.name, info.kind, info.bits
	if t.Kind == KindTimestamp || t.Kind == KindTimestampTZ || t.Kind == KindTime || t.Kind == KindInterval {
		t.Mod = modText
	}
	switch t.Kind {
	case KindText:
		if len(mods) > 1 {
			return Type{}, fmt.Errorf("type %q: too many modifiers", s)
		}
		if len(mods) == 1 {
			if mods[0] < 1 {
				return Type{}, fmt.Errorf("type %q: length must be at least 1", s)
			}
			t.Length = mods[0]
		} else if t.Name == "character" {
			t.Length = 1 // char without length is char(1)
		}
	case KindNumeric:
		switch len(mods) {
		case 0:
		case 1:
			t.Precision = mods[0]
		case 2:
			t.Precision, t.Scale = mods[0], mods[1]
		default:
			return Type{}, fmt.Errorf("type %q: too many modifiers", s)
		}
		if len(mods) > 0 && (t.Precision < 1 || t.Scale > t.Precision) {
			return Type{}, fmt.Errorf("type %q: precision must be at least 1 and not below the scale", s)
		}
	}
	return t, nil
}

// MustType is ParseType for literals in code and tests; it panics on error.
func MustType(s string) Type {
	t, err := ParseType(s)
	if err != nil {
		panic(err)
	}
	return t
}

// CanonicalText reports whether t's values and their text forms match one
// to one: integers, uuids, text and varchar (not numeric, where 1.0 and
// 1.00 are one number; not char(n), which pads). Tenant roles are named
// after a tenant column's text, so it must have such a type.
func (t Type) CanonicalText() bool {
	if t.IsArray() {
		return false
	}
	switch t.Name {
	case "smallint", "integer", "bigint", "uuid", "text", "character varying":
		return true
	}
	return false
}
