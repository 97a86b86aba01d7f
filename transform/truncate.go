package transform

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"pgveil/schema"
	"strconv"
	"unicode/utf8"
)

// truncate lowers the precision of a value: text to its first N characters,
// dates and timestamps down to the start of their year, month, day, hour or
// minute, numbers down to a multiple of a step. When the multiple below a
// negative number is out of the column type's range (-32768 with step 1000
// on a smallint), the value goes to the lowest multiple in range (-32000).
// Floating-point values are rounded down in decimal, as they are written:
// 0.3 with step 0.1 stays 0.3.
func truncateSpec() *Spec {
	return &Spec{
		Name: "truncate",
		Doc:  "Lowers precision: text to its first N characters ({truncate: 3}), dates and timestamps to a unit ({truncate: year}), numbers down to a multiple of a step ({truncate: {step: 1000}}).",
		Params: []Param{
			{Name: "length", Kind: ParamInt, Doc: "Text: characters to keep (not bytes). On a number, the same as step.", Check: positive},
			{Name: "unit", Kind: ParamString, Doc: "Dates and timestamps: the unit to truncate to.", Enum: []string{"year", "month", "day", "hour", "minute"}},
			{Name: "step", Kind: ParamNumber, Doc: "Numbers: round down to a multiple of this.", Check: positive},
		},
		Shorthand: func(v any) string {
			switch v.(type) {
			case int64:
				return "length"
			case float64:
				return "step"
			case string:
				return "unit"
			}
			return ""
		},
		Check: func(a Args) error {
			n := 0
			for _, p := range []string{"length", "unit", "step"} {
				if a.Has(p) {
					n++
				}
			}
			if n != 1 {
				return errors.New("give exactly one of length, unit or step")
			}
			return nil
		},
		New: newTruncate,
	}
}

func newTruncate(c schema.Column, a Args, _ *Keys, _ *Registry) (Transformer, error) {
	t := c.Type
	unit := a.String("unit", "")
	switch {
	case t.Kind == schema.KindText:
		if !a.Has("length") {
			return nil, fmt.Errorf("on %s give a length in characters ({truncate: 3})", t)
		}
		return truncateText{n: int(a.Int("length", 0))}, nil
	case isDateKind(t.Kind):
		if unit == "" {
			return nil, fmt.Errorf("on %s give a unit: year, month, day, hour or minute", t)
		}
		if t.Kind == schema.KindDate && (unit == "hour" || unit == "minute") {
			return nil, fmt.Errorf("a date has no %s; use year, month or day", unit)
		}
		return truncateTime{unit: unit}, nil
	case unit != "":
		return nil, fmt.Errorf("unit %s applies to dates and timestamps, not to %s", unit, t)
	case t.Kind == schema.KindInt:
		step := a.Number("step", float64(a.Int("length", 0)))
		if step != math.Trunc(step) || step >= 1<<62 {
			return nil, fmt.Errorf("the step on %s must be a whole number", t)
		}
		return truncateInt{step: int64(step), bits: t.Bits}, nil
	case t.Kind == schema.KindNumeric:
		step := a.Number("step", float64(a.Int("length", 0)))
		d, err := parseDecimal([]byte(strconv.FormatFloat(step, 'f', -1, 64)))
		if err != nil {
			return nil, err
		}
		if t.Precision > 0 && d.scale > t.Scale {
			return nil, fmt.Errorf("step has more decimals than %s keeps", t)
		}
		return truncateNumeric{step: d.normalize(), typ: t}, nil
	case t.Kind == schema.KindFloat:
		step := a.Number("step", float64(a.Int("length", 0)))
		d, err := parseDecimal(strconv.AppendFloat(nil, step, 'e', -1, 64))
		if err != nil {
			return nil, err
		}
		return truncateFloat{step: d.normalize(), bits: t.Bits}, nil
	}
	return nil, fmt.Errorf("truncate does not apply to %s columns; use %s", t, suggestFor(t))
}

type truncateText struct{ n int }

func (t truncateText) Transform(v schema.Value) (schema.Value, error) {
	s := v.Text
	if len(s) <= t.n {
		return v, nil
	}
	i := 0
	for k := 0; k < t.n && i < len(s); k++ {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, size := utf8.DecodeRune(s[i:])
		i += size
	}
	return schema.Value{Text: s[:i]}, nil
}

type truncateTime struct{ unit string }

// fast truncates the form PostgreSQL prints most often, "YYYY-MM-DD" or
// "YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]]" with a four-digit AD year,
// checking it field by field and rewriting the fields in a copy; anything
// else (BC, long years, "T", infinity, malformed) goes the general way.
func (t truncateTime) fast(s []byte) ([]byte, bool) {
	n := len(s)
	if n < 10 || s[4] != '-' || s[7] != '-' || !digits(s[0:4]) || !digits(s[5:7]) || !digits(s[8:10]) {
		return nil, false
	}
	year := int(s[0]-'0')*1000 + int(s[1]-'0')*100 + int(s[2]-'0')*10 + int(s[3]-'0')
	month, day := two(s[5:]), two(s[8:])
	if year == 0 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) {
		return nil, false
	}
	rest := 10
	if n > 10 {
		if n < 19 || s[10] != ' ' || s[13] != ':' || s[16] != ':' || !digits(s[11:13]) || !digits(s[14:16]) || !digits(s[17:19]) ||
			two(s[11:]) > 23 || two(s[14:]) > 59 || two(s[17:]) > 60 {
			return nil, false
		}
		rest = 19
		if rest < n && s[rest] == '.' {
			f := rest + 1
			for rest = f; rest < n && rest-f < 6 && s[rest] >= '0' && s[rest] <= '9'; rest++ {
			}
			if rest == f {
				return nil, false
			}
		}
		if !validOffset(s[rest:]) {
			return nil, false
		}
	}
	out := make([]byte, 0, n)
	switch t.unit {
	case "year":
		out = append(append(out, s[:5]...), "01-01"...)
	case "month":
		out = append(append(out, s[:8]...), "01"...)
	default:
		out = append(out, s[:10]...)
	}
	if n == 10 {
		return out, true
	}
	switch t.unit {
	case "hour":
		out = append(append(out, s[10:13]...), ":00:00"...)
	case "minute":
		out = append(append(out, s[10:16]...), ":00"...)
	default:
		out = append(out, " 00:00:00"...)
	}
	return append(out, s[rest:]...), true
}

func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func two(b []byte) int { return int(b[0]-'0')*10 + int(b[1]-'0') }

// validOffset accepts "", or an offset as PostgreSQL prints it: +HH,
// +HH:MM or +HH:MM:SS (or with -).
func validOffset(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if (b[0] != '+' && b[0] != '-') || (len(b) != 3 && len(b) != 6 && len(b) != 9) || !digits(b[1:3]) {
		return false
	}
	for i := 3; i < len(b); i += 3 {
		if b[i] != ':' || !digits(b[i+1:i+3]) {
			return false
		}
	}
	return true
}

func (t truncateTime) Transform(v schema.Value) (schema.Value, error) {
	if out, ok := t.fast(v.Text); ok {
		return schema.Value{Text: out}, nil
	}
	p, err := parsePGTime(v.Text)
	if err != nil {
		return schema.Value{}, err
	}
	if p.inf != 0 {
		return v, nil
	}
	p = p.truncated(t.unit)
	return schema.Value{Text: appendPGTime(make([]byte, 0, len(v.Text)), p)}, nil
}

type truncateInt struct {
	step int64
	bits int
}

func (t truncateInt) Transform(v schema.Value) (schema.Value, error) {
	x, err := parseInt(v.Text, t.bits)
	if err != nil {
		return schema.Value{}, err
	}
	r := x % t.step
	if r < 0 {
		r += t.step
	}
	y := x - r
	if lo := int64(-1) << (t.bits - 1); x < lo+r { // x-r would leave the type's range
		y = x + (t.step - r)
	}
	return schema.Value{Text: strconv.AppendInt(make([]byte, 0, 20), y, 10)}, nil
}

type truncateNumeric struct {
	step decimal
	typ  schema.Type
}

func (t truncateNumeric) Transform(v schema.Value) (schema.Value, error) {
	d, err := parseDecimal(v.Text)
	if err != nil {
		return schema.Value{}, err
	}
	if d.nan || d.inf {
		return v, nil
	}
	scale := max(d.scale, t.step.scale)
	if t.typ.Precision > 0 {
		scale = t.typ.Scale // PostgreSQL sends exactly s decimals
	}
	work := max(scale, d.scale)
	q, st := floorDecimal(d, t.step, work)
	if t.typ.Precision > 0 {
		// The floor of a negative value may need one digit more than p
		// allows: take the next multiple up, which fits.
		limit := pow10Big(t.typ.Precision)
		limit.Mul(limit, pow10Big(work-scale))
		if q.Sign() < 0 && q.CmpAbs(limit) >= 0 {
			q.Add(q, st)
		}
	}
	// q is a multiple of the step, which has at most scale decimals, so
	// dropping the extra working digits is exact.
	q.Quo(q, pow10Big(work-scale))
	return schema.Value{Text: appendBigScaled(nil, q, scale)}, nil
}

// floorDecimal returns the largest multiple of step not above d, and the
// step, both as unscaled integers at scale, which must be at least the
// scale of d and of step.
func floorDecimal(d, step decimal, scale int) (q, st *big.Int) {
	x := d.bigUnscaled()
	x.Mul(x, pow10Big(scale-d.scale))
	st = step.bigUnscaled()
	st.Mul(st, pow10Big(scale-step.scale))
	q = new(big.Int)
	var m big.Int
	q.DivMod(x, st, &m) // Euclidean: m >= 0, so q is the floor for st > 0
	q.Mul(q, st)
	return q, st
}

func pow10Big(n int) *big.Int {
	if n <= 0 {
		return big.NewInt(1)
	}
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

type truncateFloat struct {
	step decimal
	bits int
}

// Transform rounds down the shortest decimal form of the value (what
// PostgreSQL prints with extra_float_digits >= 1), not its binary value,
// whose x/step would give 0.2 for 0.3 with step 0.1, and overflow near the
// type's largest values.
func (t truncateFloat) Transform(v schema.Value) (schema.Value, error) {
	x, err := parseFloat(v.Text, t.bits)
	if err != nil {
		return schema.Value{}, err
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return v, nil
	}
	d, err := parseDecimal(strconv.AppendFloat(make([]byte, 0, 32), x, 'e', -1, t.bits))
	if err != nil {
		return schema.Value{}, err
	}
	scale := max(d.scale, t.step.scale)
	q, st := floorDecimal(d, t.step, scale)
	y, err := strconv.ParseFloat(string(appendBigScaled(nil, q, scale)), t.bits)
	if err != nil { // below the type's range: the next multiple up fits
		q.Add(q, st)
		y, _ = strconv.ParseFloat(string(appendBigScaled(nil, q, scale)), t.bits)
	}
	return schema.Value{Text: appendFloat(nil, y, t.bits)}, nil
}

// parseFloat parses real and double precision text ("1.5", "1e+300",
// "NaN", "Infinity", "-Infinity").
func parseFloat(b []byte, bits int) (float64, error) {
	x, err := strconv.ParseFloat(string(b), bits)
	if err != nil {
		return 0, invalid("not a valid floating-point number")
	}
	return x, nil
}

// appendFloat formats like PostgreSQL with extra_float_digits >= 1: the
// shortest text that reads back as the same value.
func appendFloat(dst []byte, x float64, bits int) []byte {
	switch {
	case math.IsNaN(x):
		return append(dst, "NaN"...)
	case math.IsInf(x, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(x, -1):
		return append(dst, "-Infinity"...)
	}
	if x == 0 {
		x = 0 // no "-0"
	}
	return strconv.AppendFloat(dst, x, 'g', -1, bits)
}
