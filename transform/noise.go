package transform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"
)

// noise moves a value by a keyed pseudo-random amount: numbers by up to a
// ratio of themselves ({noise: 0.05} is +/-5%), dates and timestamps by up
// to a duration ({noise: 30d}). The amount is derived from the value with a
// keyed hash, so the same value always gets the same noise: averages stay
// close and equal values stay equal, but the originals are not recoverable
// without the secret.
func noiseSpec() *Spec {
	return &Spec{
		Name: "noise",
		Doc:  "Keyed, deterministic noise: numbers move by up to a ratio of themselves ({noise: 0.05} is +/-5%), dates and timestamps by up to a duration ({noise: 30d}).",
		Params: []Param{
			{Name: "ratio", Kind: ParamNumber, Doc: "Numbers: the largest relative change (0.05 is 5%).", Check: func(v any) error {
				if err := positive(v); err != nil {
					return err
				}
				if x, _ := v.(float64); x > 10 {
					return errors.New("must be at most 10")
				}
				return nil
			}},
			{Name: "duration", Kind: ParamDuration, Doc: "Dates and timestamps: the largest shift, like 30d, 12h or 90m.", Check: positive},
		},
		Shorthand: func(v any) string {
			switch v.(type) {
			case int64, float64:
				return "ratio"
			case string:
				return "duration"
			}
			return ""
		},
		Check: func(a Args) error {
			if a.Has("ratio") == a.Has("duration") {
				return errors.New("give exactly one of ratio (numbers) or duration (dates)")
			}
			return nil
		},
		New: newNoise,
	}
}

func newNoise(c Column, a Args, k *Keys, _ *Registry) (Transformer, error) {
	t := c.Type
	switch t.Kind {
	case KindInt, KindNumeric, KindFloat:
		if !a.Has("ratio") {
			return nil, fmt.Errorf("noise on %s takes a ratio ({noise: 0.05}), not a duration", t)
		}
		return noiseNumber{keys: k, ratio: a.Number("ratio", 0), typ: t}, nil
	case KindDate, KindTimestamp, KindTimestampTZ:
		d := a.Duration("duration", 0)
		if d == 0 {
			return nil, fmt.Errorf("noise on %s takes a duration ({noise: 30d}), not a ratio", t)
		}
		if t.Kind == KindDate && d < 24*time.Hour {
			return nil, errors.New("noise on a date moves it by whole days: give a duration of at least 1d")
		}
		return noiseTime{keys: k, d: d, kind: t.Kind}, nil
	}
	return nil, fmt.Errorf("noise does not apply to %s columns; use %s", t, suggestFor(t))
}

// unit returns a keyed value in [-1, 1] derived from the input.
func noiseUnit(k *Keys, in []byte) float64 {
	sum := k.noise.sum(in)
	return float64(binary.LittleEndian.Uint64(sum[:8])>>11)/(1<<52) - 1
}

type noiseNumber struct {
	keys  *Keys
	ratio float64
	typ   Type
}

func (n noiseNumber) Transform(v Value) (Value, error) {
	f := 1 + n.ratio*noiseUnit(n.keys, v.Text)
	switch n.typ.Kind {
	case KindInt:
		x, err := parseInt(v.Text, n.typ.Bits)
		if err != nil {
			return Value{}, err
		}
		y := math.Round(float64(x) * f)
		hi := int64(1)<<(n.typ.Bits-1) - 1
		switch {
		case y >= float64(hi): // float64(hi) may round up past hi
			x = hi
		case y < float64(-hi-1):
			x = -hi - 1
		default:
			x = int64(y)
		}
		return Value{Text: strconv.AppendInt(make([]byte, 0, 20), x, 10)}, nil
	case KindFloat:
		x, err := parseFloat(v.Text, n.typ.Bits)
		if err != nil {
			return Value{}, err
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return v, nil
		}
		y := x * f
		if n.typ.Bits == 32 {
			y = float64(float32(y))
		}
		if math.IsInf(y, 0) {
			y = x // the noise overflowed the type: keep the magnitude
		}
		return Value{Text: appendFloat(nil, y, n.typ.Bits)}, nil
	}
	d, err := parseDecimal(v.Text)
	if err != nil {
		return Value{}, err
	}
	if d.nan || d.inf {
		return v, nil
	}
	scale := d.scale
	if n.typ.Precision > 0 {
		scale = n.typ.Scale
	}
	if y, ok := n.smallNumeric(d, f, scale); ok {
		return Value{Text: appendScaled(make([]byte, 0, 24), y < 0, uint64(max(y, -y)), scale)}, nil
	}
	x := new(big.Float).SetPrec(256).SetInt(d.bigUnscaled())
	x.Mul(x, big.NewFloat(f))
	// x is the unscaled value at d.scale; bring it to scale and round.
	if shift := scale - d.scale; shift != 0 {
		p := new(big.Float).SetPrec(256).SetInt(pow10Big(abs(shift)))
		if shift > 0 {
			x.Mul(x, p)
		} else {
			x.Quo(x, p)
		}
	}
	half := big.NewFloat(0.5)
	if x.Sign() < 0 {
		x.Sub(x, half)
	} else {
		x.Add(x, half)
	}
	y, _ := x.Int(nil) // truncates toward zero: with the half added, rounds half away from zero
	if n.typ.Precision > 0 {
		limit := pow10Big(n.typ.Precision) // unscaled values must stay below 10^p
		limit.Sub(limit, big.NewInt(1))
		if y.CmpAbs(limit) > 0 {
			if y.Sign() < 0 {
				y.Neg(limit)
			} else {
				y.Set(limit)
			}
		}
	}
	return Value{Text: appendBigScaled(nil, y, scale)}, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

type noiseTime struct {
	keys *Keys
	d    time.Duration
	kind Kind
}

func (n noiseTime) Transform(v Value) (Value, error) {
	p, err := parsePGTime(v.Text)
	if err != nil {
		return Value{}, err
	}
	if p.inf != 0 {
		return v, nil
	}
	u := noiseUnit(n.keys, v.Text)
	tt := p.toTime()
	if n.kind == KindDate {
		days := math.Round(u * float64(n.d/(24*time.Hour)))
		tt = tt.AddDate(0, 0, int(days))
	} else {
		tt = tt.Add(time.Duration(u * float64(n.d)).Truncate(time.Microsecond))
	}
	p = p.fromTime(clampPGTime(tt, n.kind, p.offset))
	return Value{Text: appendPGTime(make([]byte, 0, len(v.Text)), p)}, nil
}

// smallNumeric computes the noisy unscaled value in float64 when input and
// output are small enough for that to be exact to the last digit.
func (n noiseNumber) smallNumeric(d decimal, f float64, scale int) (int64, bool) {
	u, ok := d.unscaled()
	shift := scale - d.scale
	if !ok || u >= 1<<50 || shift > 6 || shift < -6 {
		return 0, false
	}
	x := float64(u) * f
	if shift > 0 {
		x *= float64(pow10[shift])
	} else if shift < 0 {
		x /= float64(pow10[-shift])
	}
	// With a ratio above 1, f and so x may be negative: clamp the
	// magnitude, then give the sign back.
	y := math.Round(math.Abs(x))
	if y >= 1<<52 {
		return 0, false
	}
	if n.typ.Precision > 0 && n.typ.Precision <= 18 && uint64(y) >= pow10[n.typ.Precision] {
		y = float64(pow10[n.typ.Precision] - 1)
	}
	if d.neg != (x < 0) {
		y = -y
	}
	return int64(y), true
}
