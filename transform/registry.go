package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"pgveil/schema"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// ParamKind is the type of a transformer parameter.
type ParamKind uint8

// Parameter kinds.
const (
	ParamInt      ParamKind = iota + 1 // int64
	ParamNumber                        // float64 (an integer is accepted)
	ParamString                        // string
	ParamBool                          // bool
	ParamDuration                      // time.Duration; "90s", "36h", "30d", "2w"
	ParamChar                          // string of exactly one character
	ParamRules                         // []PathRule: a map from JSON path to rule
)

func (k ParamKind) String() string {
	switch k {
	case ParamInt:
		return "integer"
	case ParamNumber:
		return "number"
	case ParamString:
		return "string"
	case ParamBool:
		return "boolean"
	case ParamDuration:
		return "duration"
	case ParamChar:
		return "single character"
	case ParamRules:
		return "map of JSON paths to rules"
	}
	return "unknown"
}

// Param defines one parameter of a transformer.
type Param struct {
	Name    string
	Kind    ParamKind
	Doc     string
	Default any      // used when the parameter is absent; nil means none
	Enum    []string // for strings: the accepted values
	// Check validates a decoded value (already of the right Go type) and
	// says what is wrong, without repeating the value if it may be secret.
	Check func(v any) error
}

// Spec describes one transformer: its YAML name, parameters and constructor.
type Spec struct {
	Name string
	Doc  string
	// Params in the order the reference documents them.
	Params []Param
	// Shorthand names the parameter that a scalar argument sets
	// ({truncate: 3}), given the argument's decoded Go type; "" when the
	// transformer takes no scalar argument of that type.
	Shorthand func(v any) string
	// Inline: the argument map is the value of the one ParamRules
	// parameter, not a map of parameters ({json: {"$.a": drop}}).
	Inline bool
	// Check validates the combination of parameters, without a catalog.
	Check func(a Args) error
	// New builds the transformer for one column. For array columns it is
	// called with the element type unless WholeValue is set.
	New func(c schema.Column, a Args, k *Keys, r *Registry) (Transformer, error)
	// WholeValue: the transformer handles array columns itself (keep,
	// drop, null) instead of being applied to each element.
	WholeValue bool
	// KeySafe: the output is a deterministic bijection of the input (keep,
	// hash), so the transformer may be used on primary key columns.
	KeySafe bool
	// Warn returns a warning about using the rule on a column (it works,
	// but probably not as meant), or "".
	Warn func(c schema.Column, a Args) string
}

// Param returns the named parameter definition, or nil.
func (s *Spec) Param(name string) *Param {
	for i := range s.Params {
		if s.Params[i].Name == name {
			return &s.Params[i]
		}
	}
	return nil
}

// Args are decoded parameter values: int64, float64, string, bool,
// time.Duration or []PathRule, by ParamKind.
type Args map[string]any

// Has reports whether the parameter was given.
func (a Args) Has(name string) bool { _, ok := a[name]; return ok }

// Int returns an integer parameter, or def.
func (a Args) Int(name string, def int64) int64 {
	if v, ok := a[name].(int64); ok {
		return v
	}
	return def
}

// Number returns a number parameter, or def.
func (a Args) Number(name string, def float64) float64 {
	switch v := a[name].(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	}
	return def
}

// String returns a string parameter, or def.
func (a Args) String(name, def string) string {
	if v, ok := a[name].(string); ok {
		return v
	}
	return def
}

// Bool returns a boolean parameter, or def.
func (a Args) Bool(name string, def bool) bool {
	if v, ok := a[name].(bool); ok {
		return v
	}
	return def
}

// Duration returns a duration parameter, or def.
func (a Args) Duration(name string, def time.Duration) time.Duration {
	if v, ok := a[name].(time.Duration); ok {
		return v
	}
	return def
}

// Rule is a transformer name with its arguments, as written in YAML.
// Line and Col locate it in the file (0 when unknown).
type Rule struct {
	Name      string
	Args      Args
	Line, Col int
	// OnError is what the Plan does with a value the transformer cannot
	// mask: "" stops with an error (the default); "null" writes NULL and
	// counts it (a column opts in with on_error: null).
	OnError string
}

// Short names the rule as messages show it: the bare name when it has no
// parameters, "{name: ...}" (the rules file's own shape) when it has some,
// which a message never spells out.
func (r Rule) Short() string {
	if len(r.Args) == 0 {
		return r.Name
	}
	return "{" + r.Name + ": ...}"
}

// PathRule is one entry of a json transformer: a path and its rule.
type PathRule struct {
	Path      string
	Rule      Rule
	Line, Col int // of the path key
}

// PosError is an error located at a position in the rules file, for
// problems found in nested rules (a json path's rule).
type PosError struct {
	Line, Col int
	Err       error
}

func (e *PosError) Error() string { return e.Err.Error() }
func (e *PosError) Unwrap() error { return e.Err }

// Registry maps transformer names to their specs.
type Registry struct {
	specs map[string]*Spec
}

// NewRegistry returns a registry holding the given specs. It panics on a
// malformed spec (a programming error, like regexp.MustCompile): a
// duplicate name, a missing constructor, a default of the wrong Go type, a
// shorthand naming no parameter, or an Inline spec without exactly one
// ParamRules parameter.
func NewRegistry(specs ...*Spec) *Registry {
	r := &Registry{specs: make(map[string]*Spec, len(specs))}
	for _, s := range specs {
		if err := s.validate(); err != nil {
			panic("transform: spec " + s.Name + ": " + err.Error())
		}
		if _, dup := r.specs[s.Name]; dup {
			panic("transform: duplicate transformer " + s.Name)
		}
		r.specs[s.Name] = s
	}
	return r
}

func (s *Spec) validate() error {
	if s.Name == "" || s.New == nil {
		return errors.New("needs a name and a constructor")
	}
	for i := range s.Params {
		p := &s.Params[i]
		if p.Default != nil {
			if err := p.Validate(p.Default); err != nil {
				return fmt.Errorf("default of %s: %w", p.Name, err)
			}
		}
	}
	if s.Shorthand != nil {
		for _, v := range []any{int64(0), 0.5, "x", true} {
			if n := s.Shorthand(v); n != "" && s.Param(n) == nil {
				return fmt.Errorf("shorthand names unknown parameter %q", n)
			}
		}
	}
	if s.Inline && (len(s.Params) != 1 || s.Params[0].Kind != ParamRules) {
		return errors.New("an Inline spec has exactly one ParamRules parameter")
	}
	return nil
}

// Builtin returns a registry of every transformer pgveil ships.
func Builtin() *Registry {
	return NewRegistry(keepSpec(), dropSpec(), nullSpec(), hashSpec(), fakeSpec(),
		truncateSpec(), redactSpec(), partialSpec(), noiseSpec(), jsonSpec())
}

// Warning returns the spec's warning about rule on column c, or "".
func (r *Registry) Warning(rule Rule, c schema.Column) string {
	s := r.specs[rule.Name]
	if s == nil || s.Warn == nil {
		return ""
	}
	return s.Warn(c, withDefaults(s, rule.Args))
}

// Spec returns the named spec, or nil.
func (r *Registry) Spec(name string) *Spec { return r.specs[name] }

// Names returns the transformer names in alphabetical order.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.specs))
	for n := range r.specs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Build makes the transformer of rule for column c. Arguments must have
// been decoded against the spec (see CheckArgs). For an array column a
// per-element spec is wrapped so that it applies to each element.
func (r *Registry) Build(rule Rule, c schema.Column, k *Keys) (Transformer, error) {
	s := r.specs[rule.Name]
	if s == nil {
		return nil, fmt.Errorf("unknown transformer %q (known: %s)", rule.Name, strings.Join(r.Names(), ", "))
	}
	if c.PrimaryKey && !s.KeySafe {
		if s.Name == "drop" {
			return nil, errors.New("a primary key column is always published (production UPDATE and DELETE need it); mask it with hash")
		}
		return nil, fmt.Errorf("%s on a primary key column would not keep keys unique and stable; use hash (or keep)", s.Name)
	}
	if err := r.CheckArgs(rule.Name, rule.Args); err != nil {
		return nil, err
	}
	args := withDefaults(s, rule.Args)
	if s.WholeValue {
		return s.New(c, args, k, r)
	}
	elem := c
	elem.Type = c.Type.Elem()
	t, err := s.New(elem, args, k, r)
	if err != nil || IsDrop(t) {
		return t, err
	}
	if elem.Type.Name == "character" && elem.Type.Length > 0 {
		t = blankPad{t: t, n: elem.Type.Length}
	}
	if c.Type.IsArray() {
		return arrayTransformer{elem: t}, nil
	}
	return t, nil
}

// blankPad pads the output of a transformer on a char(n) column with
// blanks to n characters, as PostgreSQL stores and prints it, so that the
// replica's values read back exactly as they were masked.
type blankPad struct {
	t Transformer
	n int
}

func (b blankPad) Transform(v schema.Value) (schema.Value, error) {
	out, err := b.t.Transform(v)
	if err != nil || out.State != schema.Present {
		return out, err
	}
	if k := utf8.RuneCount(out.Text); k < b.n {
		padded := make([]byte, len(out.Text), len(out.Text)+b.n-k)
		copy(padded, out.Text)
		for ; k < b.n; k++ {
			padded = append(padded, ' ')
		}
		out.Text = padded
	}
	return out, nil
}

// CheckArgs runs the parameter and combination checks that need no
// catalog, with defaults filled in as Build does. Values must already be
// of their ParamKind's Go type.
func (r *Registry) CheckArgs(name string, a Args) error {
	s := r.specs[name]
	if s == nil {
		return fmt.Errorf("unknown transformer %q (known: %s)", name, strings.Join(r.Names(), ", "))
	}
	a = withDefaults(s, a)
	for pname, v := range a {
		p := s.Param(pname)
		if p == nil {
			return fmt.Errorf("%s has no parameter %q", name, pname)
		}
		if err := p.Validate(v); err != nil {
			return fmt.Errorf("%s: %s: %w", name, pname, err)
		}
	}
	if s.Check != nil {
		if err := s.Check(a); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// Validate checks one decoded value: its Go type, Enum and Check.
func (p *Param) Validate(v any) error {
	ok := false
	switch p.Kind {
	case ParamInt:
		_, ok = v.(int64)
	case ParamNumber:
		switch v.(type) {
		case float64, int64:
			ok = true
		}
	case ParamString:
		_, ok = v.(string)
	case ParamChar:
		var s string
		s, ok = v.(string)
		if ok && len([]rune(s)) != 1 {
			return fmt.Errorf("must be a single character")
		}
	case ParamBool:
		_, ok = v.(bool)
	case ParamDuration:
		_, ok = v.(time.Duration)
	case ParamRules:
		_, ok = v.([]PathRule)
	}
	if !ok {
		return fmt.Errorf("must be a %s", p.Kind)
	}
	if len(p.Enum) > 0 {
		s := v.(string)
		found := false
		for _, e := range p.Enum {
			found = found || e == s
		}
		if !found {
			return fmt.Errorf("must be one of %s", strings.Join(p.Enum, ", "))
		}
	}
	if p.Check != nil {
		return p.Check(v)
	}
	return nil
}

func withDefaults(s *Spec, a Args) Args {
	out := make(Args, len(a)+len(s.Params))
	for _, p := range s.Params {
		if p.Default != nil {
			out[p.Name] = p.Default
		}
	}
	for k, v := range a {
		out[k] = v
	}
	return out
}

// ParseDuration parses Go durations ("90s", "36h") and whole days or weeks
// ("30d", "2w"), which is how dates are usually shifted.
func ParseDuration(s string) (time.Duration, error) {
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'w') {
		// time.Duration holds about 106,751 days; refuse more.
		const maxDays = int64(math.MaxInt64 / int64(24*time.Hour))
		var days int64
		for _, c := range s[:n-1] {
			if c < '0' || c > '9' || days > maxDays {
				return 0, fmt.Errorf("bad duration: use forms like 90s, 36h, 30d or 2w")
			}
			days = days*10 + int64(c-'0')
		}
		if s[n-1] == 'w' {
			days *= 7
		}
		if days > maxDays {
			return 0, fmt.Errorf("duration too long: at most %d days", maxDays)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration: use forms like 90s, 36h, 30d or 2w")
	}
	return d, nil
}

func positive(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 1 {
			return fmt.Errorf("must be at least 1")
		}
	case float64:
		if !(x > 0) {
			return fmt.Errorf("must be greater than 0")
		}
	case time.Duration:
		if x <= 0 {
			return fmt.Errorf("must be greater than 0")
		}
	}
	return nil
}

func nonNegative(v any) error {
	if x, ok := v.(int64); ok && x < 0 {
		return fmt.Errorf("must not be negative")
	}
	return nil
}

// SameMasking reports whether two rules mask a value alike: the same
// transformer with the same parameters, nested JSON path rules included.
// Positions in the rules file and on_error are left out: neither changes
// a masked value (on_error only decides what a value the transformer
// cannot mask becomes). validate's join check, report's join discovery
// and the replica's foreign keys all ask this one question.
func SameMasking(a, b Rule) bool { return maskingKey(a) == maskingKey(b) }

// maskingKey is a rule as a comparable string: its name and parameters.
func maskingKey(r Rule) string {
	args := map[string]any{}
	for k, v := range r.Args {
		if paths, ok := v.([]PathRule); ok {
			nested := make([]string, len(paths))
			for i, p := range paths {
				nested[i] = p.Path + "\x00" + maskingKey(p.Rule)
			}
			args[k] = nested
			continue
		}
		args[k] = v
	}
	b, _ := json.Marshal(args)
	return r.Name + "\x00" + string(b)
}
