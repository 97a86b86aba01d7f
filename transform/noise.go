package transform

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"pgveil/schema"
	"strconv"
	"time"
)

// noise moves a value by a keyed pseudo-random amount: numbers by up to a
// ratio of themselves ({noise: 0.05} is +/-5%), dates and timestamps by up
// to a duration ({noise: 30d}). The same value always gets the same noise:
// averages stay close and equal values stay equal.
//
// How the amount is drawn is what keeps the originals hidden when outputs
// are combined (issue 17, finding 3). An earlier version drew a unit u from
// the value alone and moved x to x*(1+r*u): the same value under two ratios
// gave y1 = x(1+r1 u) and y2 = x(1+r2 u), and x = (r1 y2 - r2 y1)/(r1 - r2)
// exactly; and a counter updated by small steps got fresh noise at every
// step, so averaging 200 updates cut the error by sqrt(200). Now:
//
//   - The draw is HMAC(noise key, the rule's parameters, a bucket of the
//     value): two ratios, two durations, or a rule change give independent
//     draws, so no combination of them cancels the noise; each is only one
//     more observation, which narrows the range by intersection (documented).
//   - The value's axis is cut into buckets about as wide as the noise: for a
//     ratio r, logarithmic buckets of |x| with factor 1+r (1+min(r,1): wider
//     buckets only help), per sign; for a duration d, buckets d wide. Within
//     a bucket the offset is constant: y = x + delta, with delta = u*r*e for
//     numbers (e the bucket's lower edge, so |delta| <= r|x|) and delta = u*d
//     for times. A value moving by small steps keeps its offset, so averaging
//     its updates gains nothing, and the steps it shows are the true steps,
//     which say nothing of where the value is. (A multiplicative factor would
//     leak instead: its steps would show the factor, and x = y/factor.)
//   - Each bucket's lower edge is moved by a keyed fraction of a bucket, so
//     that a value seen crossing an edge (its offset jumps) does not give
//     itself away by a public grid.
//
// What stays visible (docs/rules.md says it too): values in one bucket keep
// their order and their differences, and one known original in a bucket
// gives its offset, hence every value of that bucket.
//
// Buckets follow the value, not its text: 1000, 1000.00 and 1e3 in integer,
// numeric, double or JSON get the same draw (an integer and a numeric copy
// of a column are not two observations), and dates and timestamps share one
// time axis.
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

func newNoise(c schema.Column, a Args, k *Keys, _ *Registry) (Transformer, error) {
	t := c.Type
	switch t.Kind {
	case schema.KindInt, schema.KindNumeric, schema.KindFloat:
		if !a.Has("ratio") {
			return nil, fmt.Errorf("noise on %s takes a ratio ({noise: 0.05}), not a duration", t)
		}
		r := a.Number("ratio", 0)
		// Bucket factor 1+r, kept within [1+1e-6, 2]: a tiny ratio
		// would give more buckets than an int64 counts, and above 1
		// the bucket only needs to be as wide as the value.
		step := math.Log10(1 + min(max(r, 1e-6), 1))
		return noiseNumber{keys: k, ratio: r, logStep: step, typ: t}, nil
	case schema.KindDate, schema.KindTimestamp, schema.KindTimestampTZ:
		d := a.Duration("duration", 0)
		if d == 0 {
			return nil, fmt.Errorf("noise on %s takes a duration ({noise: 30d}), not a ratio", t)
		}
		if t.Kind == schema.KindDate && d < 24*time.Hour {
			return nil, errors.New("noise on a date moves it by whole days: give a duration of at least 1d")
		}
		return noiseTime{keys: k, d: d, width: max(int64(d/time.Microsecond), 1), kind: t.Kind}, nil
	}
	return nil, fmt.Errorf("noise does not apply to %s columns; use %s", t, suggestFor(t))
}

// noiseDraw is one bucket's keyed draw: u in [-1, 1) moves its values, j in
// [0, 1/2) moves its lower edge by that fraction of a bucket.
type noiseDraw struct{ u, j float64 }

// Domains of noise draws, so that a number's draw never serves a time's.
const (
	noiseRatio byte = 'r'
	noiseTimes byte = 't'
)

// draw returns the draw of a bucket: HMAC(noise key, domain, parameter,
// sign, bucket).
func (k *Keys) noiseDraw(domain byte, param uint64, neg bool, bucket int64) noiseDraw {
	var msg [18]byte
	msg[0] = domain
	binary.LittleEndian.PutUint64(msg[1:], param)
	if neg {
		msg[9] = 1
	}
	binary.LittleEndian.PutUint64(msg[10:], uint64(bucket))
	sum := k.noise.sum(msg[:])
	return noiseDraw{
		u: float64(binary.LittleEndian.Uint64(sum[:8])>>11)/(1<<52) - 1,
		j: float64(binary.LittleEndian.Uint64(sum[8:16])>>11) / (1 << 54),
	}
}

type noiseNumber struct {
	keys    *Keys
	ratio   float64
	logStep float64 // log10 of the bucket factor
	typ     schema.Type
}

// offset returns the draw for a nonzero number of the given sign whose
// absolute value has log10 t10, and log10 of its bucket's lower edge: the
// value moves by u * ratio * 10^edge, at most ratio * |x|.
//
// The bucket comes from a float64 logarithm. Go's math is deterministic on
// one architecture; across architectures a last-bit difference in Log10
// could put a value within ~1e-15 (relative) of an edge into the next
// bucket. Times avoid floats for the bucket entirely.
func (n noiseNumber) offset(neg bool, t10 float64) (u, edge float64) {
	t := t10 / n.logStep
	b := math.Floor(t)
	d := n.keys.noiseDraw(noiseRatio, math.Float64bits(n.ratio), neg, int64(b))
	if t-b < d.j {
		// Below this bucket's (moved) lower edge: the value is in the
		// bucket under it, whose edge is lower still (j < 1).
		b--
		d = n.keys.noiseDraw(noiseRatio, math.Float64bits(n.ratio), neg, int64(b))
	}
	return d.u, (b + d.j) * n.logStep
}

// log10Digits returns log10 of digits * 10^exp (digits: ASCII decimal
// digits, not all zero). Leading and trailing zeros are dropped and at
// most 17 significant digits kept, so that a number gives the same result
// whatever its type or text form (1000, 1000.00, 1e+03).
func log10Digits(digits []byte, exp int) float64 {
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
	}
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	if len(digits) > 17 {
		exp += len(digits) - 17
		digits = digits[:17]
	}
	var v uint64
	for _, c := range digits {
		v = v*10 + uint64(c-'0')
	}
	return math.Log10(float64(v)) + float64(exp)
}

// log10Float is log10Digits of the shortest decimal form of |x|, the form
// PostgreSQL prints.
func log10Float(x float64, bits int) float64 {
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], math.Abs(x), 'e', -1, bits)
	e := bytes.IndexByte(s, 'e')
	exp, _ := strconv.Atoi(string(s[e+1:]))
	digits := make([]byte, 0, 20)
	for _, c := range s[:e] {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	return log10Digits(digits, exp-(len(digits)-1))
}

func (n noiseNumber) Transform(v schema.Value) (schema.Value, error) {
	switch n.typ.Kind {
	case schema.KindInt:
		return n.noiseInt(v)
	case schema.KindFloat:
		return n.noiseFloat(v)
	}
	return n.noiseNumeric(v)
}

// noiseInt moves an integer by at most ratio*|x|, toward zero, clamped
// to the type's range.
func (n noiseNumber) noiseInt(v schema.Value) (schema.Value, error) {
	x, err := parseInt(v.Text, n.typ.Bits)
	if err != nil {
		return schema.Value{}, err
	}
	if x == 0 {
		return schema.Value{Text: []byte("0")}, nil // no magnitude to move by
	}
	var digits [20]byte
	ax := strconv.AppendUint(digits[:0], absInt64(x), 10)
	u, edge := n.offset(x < 0, log10Digits(ax, 0))
	delta := math.Trunc(u * n.ratio * math.Pow(10, edge)) // toward zero: within ratio*|x|
	hi := int64(1)<<(n.typ.Bits-1) - 1
	lo := -hi - 1
	var y int64
	switch di := int64(delta); {
	case math.Abs(delta) >= 1<<62:
		// Only with ratios above 1 on huge values: float is
		// precise enough, then clamp.
		yf := float64(x) + delta
		switch {
		case yf >= float64(hi): // float64(hi) may round up past hi
			y = hi
		case yf <= float64(lo):
			y = lo
		default:
			y = int64(yf)
		}
	case di > 0 && x > hi-di:
		y = hi
	case di < 0 && x < lo-di:
		y = lo
	default:
		y = x + di
	}
	return schema.Value{Text: strconv.AppendInt(make([]byte, 0, 20), y, 10)}, nil
}

// noiseFloat moves a float by at most ratio*|x|; NaN, infinities and
// zero stay.
func (n noiseNumber) noiseFloat(v schema.Value) (schema.Value, error) {
	x, err := parseFloat(v.Text, n.typ.Bits)
	if err != nil {
		return schema.Value{}, err
	}
	if math.IsNaN(x) || math.IsInf(x, 0) || x == 0 {
		return v, nil
	}
	u, edge := n.offset(x < 0, log10Float(x, n.typ.Bits))
	y := x + u*n.ratio*math.Pow(10, edge)
	if n.typ.Bits == 32 {
		y = float64(float32(y))
	}
	// The noise overflowed the type, or rounding (of subnormals)
	// took it past the ratio: keep the value.
	if math.IsInf(y, 0) || math.Abs(y-x) > n.ratio*math.Abs(x) {
		y = x
	}
	return schema.Value{Text: appendFloat(nil, y, n.typ.Bits)}, nil
}

// noiseNumeric moves a numeric by at most ratio*|x| at the output's
// scale, within its precision; NaN and infinities stay.
func (n noiseNumber) noiseNumeric(v schema.Value) (schema.Value, error) {
	d, err := parseDecimal(v.Text)
	if err != nil {
		return schema.Value{}, err
	}
	if d.nan || d.inf {
		return v, nil
	}
	scale := d.scale
	if n.typ.Precision > 0 {
		scale = n.typ.Scale
	}
	var u, edge float64
	if !d.isZero() {
		u, edge = n.offset(d.neg, log10Digits(d.digits, -d.scale))
	}
	// delta, unscaled at the output's scale, toward zero: small in an
	// int64, else in a big.Int.
	var small int64
	var delta *big.Int
	if e := edge + float64(scale); !d.isZero() && e >= -1 {
		if e < 17 {
			small = int64(u * n.ratio * math.Pow(10, e))
		} else {
			whole := math.Floor(e)
			f := new(big.Float).SetPrec(256).SetFloat64(u * n.ratio * math.Pow(10, e-whole))
			f.Mul(f, new(big.Float).SetPrec(256).SetInt(pow10Big(int(whole))))
			delta, _ = f.Int(nil) // truncates toward zero
		}
	}
	if x, ok := d.unscaled(); ok && delta == nil && scale == d.scale && x < 1<<62 && n.typ.Precision <= 18 {
		// The common case, in int64: |x| < 2^62 and |small| < 10^18.
		y := int64(x)
		if d.neg {
			y = -y
		}
		y += small
		if n.typ.Precision > 0 {
			limit := int64(pow10[n.typ.Precision] - 1)
			y = min(max(y, -limit), limit)
		}
		return schema.Value{Text: appendScaled(make([]byte, 0, 24), y < 0, uint64(max(y, -y)), scale)}, nil
	}
	if delta == nil && small != 0 {
		delta = big.NewInt(small)
	}
	// The general case: the value brought to the output scale (half away
	// from zero), plus delta, within the precision.
	x := d.bigUnscaled()
	if shift := scale - d.scale; shift > 0 {
		x.Mul(x, pow10Big(shift))
	} else if shift < 0 {
		p := pow10Big(-shift)
		q, r := new(big.Int).QuoRem(x, p, new(big.Int))
		r.Abs(r).Mul(r, big.NewInt(2))
		if r.Cmp(p) >= 0 {
			if x.Sign() < 0 {
				q.Sub(q, big.NewInt(1))
			} else {
				q.Add(q, big.NewInt(1))
			}
		}
		x = q
	}
	if delta != nil {
		x.Add(x, delta)
	}
	if n.typ.Precision > 0 {
		limit := pow10Big(n.typ.Precision) // unscaled values must stay below 10^p
		limit.Sub(limit, big.NewInt(1))
		if x.CmpAbs(limit) > 0 {
			if x.Sign() < 0 {
				x.Neg(limit)
			} else {
				x.Set(limit)
			}
		}
	}
	return schema.Value{Text: appendBigScaled(nil, x, scale)}, nil
}

func absInt64(x int64) uint64 {
	if x < 0 {
		return uint64(-(x + 1)) + 1
	}
	return uint64(x)
}

type noiseTime struct {
	keys  *Keys
	d     time.Duration
	width int64 // of a bucket, in microseconds
	kind  schema.Kind
}

// pgEpochUnix is 2000-01-01 00:00:00 UTC, PostgreSQL's epoch, in Unix
// seconds: positions count microseconds from it, as PostgreSQL stores them.
const pgEpochUnix = 946684800

// offset returns the draw for the UTC instant at: the bucket is the
// instant's microseconds from 2000-01-01 divided by the duration, so a
// date and the same day's midnight timestamp share it.
func (n noiseTime) offset(at time.Time) float64 {
	sec := at.Unix() - pgEpochUnix
	usec := int64(at.Nanosecond() / 1000)
	var b, rem int64
	if sec > -9e12 && sec < 9e12 { // sec*1e6 fits: every timestamp, dates to year 287000
		pos := sec*1e6 + usec
		b = pos / n.width
		rem = pos - b*n.width
		if rem < 0 {
			b--
			rem += n.width
		}
	} else {
		pos := new(big.Int).Mul(big.NewInt(sec), big.NewInt(1e6))
		pos.Add(pos, big.NewInt(usec))
		q, m := new(big.Int).DivMod(pos, big.NewInt(n.width), new(big.Int)) // Euclidean: m >= 0
		b, rem = q.Int64(), m.Int64()
	}
	d := n.keys.noiseDraw(noiseTimes, uint64(n.width), false, b)
	if rem < int64(d.j*float64(n.width)) {
		d = n.keys.noiseDraw(noiseTimes, uint64(n.width), false, b-1)
	}
	return d.u
}

func (n noiseTime) Transform(v schema.Value) (schema.Value, error) {
	p, err := parsePGTime(v.Text)
	if err != nil {
		return schema.Value{}, err
	}
	if p.inf != 0 {
		return v, nil
	}
	tt := p.toTime()
	u := n.offset(tt.Add(-time.Duration(offsetSeconds(p.offset)) * time.Second))
	if n.kind == schema.KindDate {
		days := math.Round(u * float64(n.d/(24*time.Hour)))
		tt = tt.AddDate(0, 0, int(days))
	} else {
		tt = tt.Add(time.Duration(u * float64(n.d)).Truncate(time.Microsecond))
	}
	p = p.fromTime(clampPGTime(tt, n.kind, p.offset))
	return schema.Value{Text: appendPGTime(make([]byte, 0, len(v.Text)), p)}, nil
}
