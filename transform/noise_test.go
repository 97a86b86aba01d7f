package transform

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

// noiseOf builds {noise: ratio} or {noise: duration} for typ.
func noiseOf(t testing.TB, k *Keys, typ string, arg any) Transformer {
	t.Helper()
	name := "ratio"
	if _, ok := arg.(time.Duration); ok {
		name = "duration"
	}
	return build(t, k, typ, Rule{Name: "noise", Args: Args{name: arg}})
}

func TestNoiseIntegerBounds(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, typ := range []string{"smallint", "integer", "bigint"} {
		tr := noiseOf(t, k, typ, 0.1)
		moved, up, down := 0, 0.0, 0.0
		for i := range 2000 {
			// Values over many of noise's buckets (each has one offset):
			// from 1000 up by 0.25% steps, to about 150 million.
			v := int64(1000 * math.Pow(1.0025, float64(i)))
			if typ == "smallint" {
				v = 1000 + int64(i)*15 // up to 31000
			}
			for _, x := range []int64{v, -v} {
				in := strconv.FormatInt(x, 10)
				got := apply(t, tr, in)
				y, err := strconv.ParseInt(got, 10, 64)
				if err != nil {
					t.Fatalf("%s: noise of %s = %q, not an integer", typ, in, got)
				}
				if d := math.Abs(float64(y - x)); d > math.Abs(float64(x))*0.1+0.5 {
					t.Fatalf("%s: noise 0.1 of %d = %d, moved by more than 10%%", typ, x, y)
				}
				if y != x {
					moved++
				}
				r := float64(y-x) / float64(x)
				up, down = max(up, r), min(down, r)
			}
		}
		// Noise spreads over the whole range, both ways.
		if moved < 3900 || up < 0.09 || down > -0.09 {
			t.Errorf("%s: %d of 4000 moved, largest moves %+.3f and %+.3f", typ, moved, down, up)
		}
	}
}

func TestNoiseIsDeterministicAndKeyed(t *testing.T) {
	ka, ka2, kb := testKeys(t, pgtest.Secret), testKeys(t, pgtest.Secret), testKeys(t, veilSecretB)
	for _, tt := range []struct {
		typ string
		arg any
		in  string
	}{
		{"integer", 0.2, "123456"},
		{"numeric(12,2)", 0.2, "123456.78"},
		{"double precision", 0.2, "123456.78"},
		{"timestamp", 30 * 24 * time.Hour, "2024-03-15 13:45:12"},
		{"date", 30 * 24 * time.Hour, "2024-03-15"},
	} {
		a := apply(t, noiseOf(t, ka, tt.typ, tt.arg), tt.in)
		a2 := apply(t, noiseOf(t, ka2, tt.typ, tt.arg), tt.in)
		b := apply(t, noiseOf(t, kb, tt.typ, tt.arg), tt.in)
		if a != a2 {
			t.Errorf("%s: same secret, different noise: %s and %s", tt.typ, a, a2)
		}
		if a == b {
			t.Errorf("%s: another secret gives the same noise %s", tt.typ, a)
		}
		if a == tt.in {
			t.Errorf("%s: %s did not move", tt.typ, tt.in)
		}
	}
}

func TestNoiseIntegerLimits(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ    string
		lo, hi int64
	}{
		{"smallint", math.MinInt16, math.MaxInt16},
		{"integer", math.MinInt32, math.MaxInt32},
		{"bigint", math.MinInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		for _, ratio := range []float64{0.5, 10} {
			tr := noiseOf(t, k, tt.typ, ratio)
			for i := int64(0); i < 200; i++ {
				for _, x := range []int64{tt.hi - i, tt.lo + i, i, -i} {
					in := strconv.FormatInt(x, 10)
					got := apply(t, tr, in)
					y, err := strconv.ParseInt(got, 10, 64)
					if err != nil || y < tt.lo || y > tt.hi {
						t.Fatalf("%s ratio %v: noise of %s = %q, out of range", tt.typ, ratio, in, got)
					}
				}
			}
		}
	}
	// Zero has no magnitude to move by.
	if got := apply(t, noiseOf(t, k, "integer", 0.5), "0"); got != "0" {
		t.Errorf("noise of 0 = %s", got)
	}
}

func TestNoiseNumeric(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	// numeric(p,s): scale kept, value within the ratio and the precision.
	tr := noiseOf(t, k, "numeric(5,2)", 0.5)
	limit := big.NewRat(99999, 100)
	for i := 0; i < 400; i++ {
		for _, in := range []string{
			strconv.FormatFloat(999.99-float64(i)/100, 'f', 2, 64),
			strconv.FormatFloat(-999.99+float64(i)/100, 'f', 2, 64),
			strconv.FormatFloat(float64(i)*1.37, 'f', 2, 64),
		} {
			got := apply(t, tr, in)
			if dot := strings.IndexByte(got, '.'); dot < 0 || len(got)-dot-1 != 2 {
				t.Fatalf("numeric(5,2): noise of %s = %s, not 2 decimals", in, got)
			}
			y, _ := new(big.Rat).SetString(got)
			x, _ := new(big.Rat).SetString(in)
			if y == nil || new(big.Rat).Abs(y).Cmp(limit) > 0 {
				t.Fatalf("numeric(5,2): noise of %s = %s, out of range", in, got)
			}
			// |y - x| <= 0.5|x| + 0.005 (rounding), unless clamped at the limit.
			diff := new(big.Rat).Abs(new(big.Rat).Sub(y, x))
			bound := new(big.Rat).Add(new(big.Rat).Mul(new(big.Rat).Abs(x), big.NewRat(1, 2)), big.NewRat(1, 200))
			if diff.Cmp(bound) > 0 {
				t.Fatalf("numeric(5,2): noise 0.5 of %s = %s moved too far", in, got)
			}
		}
	}
	// A ratio above 1 can flip the sign; the result still fits and stays
	// within the ratio.
	for _, typ := range []string{"numeric(5,2)", "numeric(20,4)", "numeric"} {
		tr := noiseOf(t, k, typ, 10.0)
		flipped := 0
		for i := 1; i < 2000; i++ {
			in := strconv.FormatFloat(float64(i)/2, 'f', 2, 64)
			if i%2 == 0 {
				in = "-" + in
			}
			got := apply(t, tr, in)
			y, _ := new(big.Rat).SetString(got)
			x, _ := new(big.Rat).SetString(in)
			if y == nil {
				t.Fatalf("%s: noise of %s = %q", typ, in, got)
			}
			if typ == "numeric(5,2)" && new(big.Rat).Abs(y).Cmp(limit) > 0 {
				t.Fatalf("%s: noise 10 of %s = %s, out of range", typ, in, got)
			}
			f, _ := new(big.Rat).Quo(y, x).Float64()
			if f < -9.01 || f > 11.01 {
				t.Fatalf("%s: noise 10 of %s = %s, a factor of %v", typ, in, got, f)
			}
			if f < 0 {
				flipped++
			}
		}
		if flipped < 500 {
			t.Errorf("%s: noise 10 flipped the sign of %d values of 2000", typ, flipped)
		}
	}
	tests := []struct {
		typ, in string
		check   func(string) bool
	}{
		{"numeric", "NaN", func(s string) bool { return s == "NaN" }},
		{"numeric", "Infinity", func(s string) bool { return s == "Infinity" }},
		{"numeric", "-Infinity", func(s string) bool { return s == "-Infinity" }},
		{"numeric(10,2)", "NaN", func(s string) bool { return s == "NaN" }},
		{"numeric", "0", func(s string) bool { return s == "0" }},
		{"numeric", "0.000", func(s string) bool { return s == "0.000" }},
		// Unconstrained numeric keeps the input's scale.
		{"numeric", "12.50", func(s string) bool { return len(s) >= 4 && s[len(s)-3] == '.' }},
		{"numeric", "1234", func(s string) bool { return !strings.Contains(s, ".") }},
		{"numeric", "123456789012345678901234567890.123", func(s string) bool {
			return len(s) >= 33 && s[len(s)-4] == '.' && s != "123456789012345678901234567890.123"
		}},
	}
	for _, tt := range tests {
		got := apply(t, noiseOf(t, k, tt.typ, 0.1), tt.in)
		if !tt.check(got) {
			t.Errorf("noise 0.1 on %s of %s = %s", tt.typ, tt.in, got)
		}
	}
}

func TestNoiseFloat(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, tt := range []struct {
		typ  string
		bits int
		ins  []string
	}{
		{"double precision", 64, []string{"1.5", "-1234.5678", "1e+300", "1.7976931348623157e+308", "-1.7976931348623157e+308", "5e-324", "0.1"}},
		{"real", 32, []string{"1.5", "-1234.5678", "3.4028235e+38", "-3.4028235e+38", "1e-45", "0.1"}},
	} {
		tr := noiseOf(t, k, tt.typ, 0.5)
		for _, in := range tt.ins {
			got := apply(t, tr, in)
			x, _ := strconv.ParseFloat(in, tt.bits)
			y, err := strconv.ParseFloat(got, tt.bits)
			if err != nil || math.IsInf(y, 0) || math.IsNaN(y) {
				t.Errorf("%s: noise of %s = %q, not a finite %s", tt.typ, in, got, tt.typ)
				continue
			}
			if math.Abs(y-x) > math.Abs(x)*0.5*(1+1e-6) {
				t.Errorf("%s: noise 0.5 of %s = %s, moved too far", tt.typ, in, got)
			}
		}
		for _, in := range []string{"NaN", "Infinity", "-Infinity", "0"} {
			if got := apply(t, tr, in); got != in {
				t.Errorf("%s: noise of %s = %s, want it unchanged", tt.typ, in, got)
			}
		}
	}
}

// pgInstant parses a PostgreSQL timestamp and returns its UTC instant.
func pgInstant(t testing.TB, s string) time.Time {
	t.Helper()
	p, err := parsePGTime([]byte(s))
	if err != nil {
		t.Fatalf("output %q does not parse: %v", s, err)
	}
	return p.toTime().Add(-time.Duration(offsetSeconds(p.offset)) * time.Second)
}

func TestNoiseTime(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	day := 24 * time.Hour
	for _, tt := range []struct {
		typ string
		d   time.Duration
		ins []string
	}{
		{"date", 30 * day, []string{"2024-03-15", "2000-02-29", "0044-03-15 BC", "1999-12-31"}},
		{"date", 36 * time.Hour, []string{"2024-03-15", "2024-03-16"}},
		{"timestamp", 12 * time.Hour, []string{"2024-03-15 13:45:12", "2024-03-15 13:45:12.5", "0044-03-15 12:00:00 BC"}},
		{"timestamptz", 90 * time.Minute, []string{"2024-03-15 13:45:12+05:30", "1890-03-15 13:45:12+05:53:28", "0044-03-15 12:00:00+05:53:28 BC", "2024-03-15T10:00:00Z"}},
	} {
		tr := noiseOf(t, k, tt.typ, tt.d)
		limit := tt.d
		if tt.typ == "date" {
			limit = tt.d.Truncate(day)
		}
		for _, in := range tt.ins {
			got := apply(t, tr, in)
			x, y := pgInstant(t, in), pgInstant(t, got)
			if diff := y.Sub(x); diff > limit || diff < -limit {
				t.Errorf("%s: noise %v of %s = %s, moved by %v", tt.typ, tt.d, in, got, diff)
			}
			pin, _ := parsePGTime([]byte(in))
			pout, _ := parsePGTime([]byte(got))
			if string(pin.offset) != string(pout.offset) || pin.clock != pout.clock || pin.sepT != pout.sepT {
				t.Errorf("%s: noise of %s = %s, changed the format", tt.typ, in, got)
			}
			if tt.typ == "date" && pout.clock {
				t.Errorf("date noise gave a time: %s", got)
			}
		}
		for _, in := range []string{"infinity", "-infinity"} {
			if got := apply(t, tr, in); got != in {
				t.Errorf("%s: noise of %s = %s", tt.typ, in, got)
			}
		}
	}
	// Spread: a month of noise on many dates moves both ways, by up to a month.
	tr := noiseOf(t, k, "date", 30*day)
	lo, hi := time.Duration(0), time.Duration(0)
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 500; i++ {
		in := base.AddDate(0, 0, 7*i).Format(time.DateOnly) // over many 30-day buckets
		d := pgInstant(t, apply(t, tr, in)).Sub(pgInstant(t, in))
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo > -25*day || hi < 25*day {
		t.Errorf("date noise of 30d only spreads over %v..%v", lo, hi)
	}
}

func TestNoiseTimeLimits(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	minT := time.Date(-4713, time.November, 24, 0, 0, 0, 0, time.UTC)
	maxTS := time.Date(294276, time.December, 31, 23, 59, 59, 999999000, time.UTC)
	maxD := time.Date(5874897, time.December, 31, 0, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	for _, tt := range []struct {
		typ  string
		hi   time.Time
		step time.Duration // inputs step away from each limit by this
		// values at the limits, the upper one first, as PostgreSQL prints them
		upper, lower string
	}{
		{"date", maxD, 24 * time.Hour, "5874897-12-31", "4714-11-24 BC"},
		{"timestamp", maxTS, time.Hour + time.Microsecond, "294276-12-31 23:59:59.999999", "4714-11-24 00:00:00 BC"},
		{"timestamptz", maxTS, time.Hour + time.Microsecond, "294276-12-31 23:59:59.999999+00", "4714-11-24 00:00:00+00 BC"},
		{"timestamptz", maxTS, time.Hour + time.Microsecond, "294276-12-31 18:59:59.999999-05", "4714-11-24 05:53:28+05:53:28 BC"},
		{"timestamptz", maxTS, time.Hour + time.Microsecond, "294277-01-01 05:29:59.999999+05:30", "4714-11-23 21:00:00-03 BC"},
	} {
		for _, d := range []time.Duration{2 * year, 1000 * 24 * time.Hour, 36 * time.Hour} {
			tr := noiseOf(t, k, tt.typ, d)
			for _, lim := range []string{tt.upper, tt.lower} {
				p, err := parsePGTime([]byte(lim))
				if err != nil {
					t.Fatalf("%s: %v", lim, err)
				}
				if got := pgInstant(t, lim); got.Before(minT) || got.After(tt.hi) {
					t.Fatalf("test limit %s is out of range itself", lim)
				}
				sign := time.Duration(-1)
				if lim == tt.lower {
					sign = 1
				}
				for i := range 40 {
					in := string(appendPGTime(nil, p.fromTime(p.toTime().Add(sign*time.Duration(i)*tt.step))))
					got := apply(t, tr, in)
					if y := pgInstant(t, got); y.Before(minT) || y.After(tt.hi) {
						t.Errorf("%s noise %v: %s -> %s, out of range", tt.typ, d, in, got)
					}
				}
			}
		}
	}
}

func TestNoiseArrays(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	one := noiseOf(t, k, "integer", 0.1)
	arr := noiseOf(t, k, "integer[]", 0.1)
	a, b, c := apply(t, one, "1000"), apply(t, one, "2000"), apply(t, one, "-3000")
	if got, want := apply(t, arr, "{{1000,NULL},{2000,-3000}}"), "{{"+a+",NULL},{"+b+","+c+"}}"; got != want {
		t.Errorf("integer[] noise = %s, want %s", got, want)
	}
	dOne := noiseOf(t, k, "date", 10*24*time.Hour)
	dArr := noiseOf(t, k, "date[]", 10*24*time.Hour)
	if got, want := apply(t, dArr, "{2024-03-15,NULL,infinity}"), "{"+apply(t, dOne, "2024-03-15")+",NULL,infinity}"; got != want {
		t.Errorf("date[] noise = %s, want %s", got, want)
	}
}

func TestNoiseBuildErrors(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	day := 24 * time.Hour
	tests := []struct {
		typ  string
		args Args
		want string
	}{
		{"date", Args{"ratio": 0.1}, "noise on date takes a duration ({noise: 30d}), not a ratio"},
		{"timestamptz", Args{"ratio": 0.1}, "takes a duration"},
		{"integer", Args{"duration": day}, "noise on integer takes a ratio ({noise: 0.05}), not a duration"},
		{"numeric(10,2)", Args{"duration": day}, "takes a ratio"},
		{"real", Args{"duration": day}, "takes a ratio"},
		{"date", Args{"duration": 12 * time.Hour}, "noise on a date moves it by whole days: give a duration of at least 1d"},
		{"date[]", Args{"duration": time.Hour}, "at least 1d"},
		{"text", Args{"ratio": 0.1}, "noise does not apply to text columns"},
		{"boolean", Args{"ratio": 0.1}, "noise does not apply to boolean"},
		{"uuid", Args{"duration": day}, "does not apply"},
		{"integer", Args{"ratio": 0.1, "duration": day}, "give exactly one of ratio (numbers) or duration (dates)"},
		{"integer", Args{}, "give exactly one of ratio"},
		{"integer", Args{"ratio": 0.0}, "ratio: must be greater than 0"},
		{"integer", Args{"ratio": -0.5}, "ratio: must be greater than 0"},
		{"integer", Args{"ratio": 10.5}, "ratio: must be at most 10"},
		{"integer", Args{"ratio": math.NaN()}, "ratio: must be greater than 0"},
		{"date", Args{"duration": -day}, "duration: must be greater than 0"},
		{"date", Args{"duration": "30d"}, "duration: must be a duration"},
		{"integer", Args{"ratio": "5%"}, "ratio: must be a number"},
		{"integer", Args{"amount": 0.1}, `noise has no parameter "amount"`},
	}
	for _, tt := range tests {
		_, err := veilBuildErr(k, tt.typ, Rule{Name: "noise", Args: tt.args})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("noise %v on %s: error %v, want %q", tt.args, tt.typ, err, tt.want)
		}
	}
	// An integer ratio is accepted.
	if _, err := veilBuildErr(k, "integer", Rule{Name: "noise", Args: Args{"ratio": int64(1)}}); err != nil {
		t.Errorf("noise ratio 1 (int): %v", err)
	}
}

func TestNoiseRejectsBadInput(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, tt := range []struct {
		typ string
		arg any
		ins []string
	}{
		{"integer", 0.1, []string{veilCanary, "", "1.5", "2147483648", "0x10"}},
		{"smallint", 0.1, []string{"40000", veilCanary}},
		{"numeric", 0.1, []string{veilCanary, "", "1.2.3", "Inf"}},
		{"numeric(5,2)", 0.1, []string{veilCanary}},
		{"real", 0.1, []string{veilCanary, "1e39"}},
		{"double precision", 0.1, []string{veilCanary, ""}},
		{"date", 30 * 24 * time.Hour, []string{veilCanary, "2024-02-30", "2024-03-15 12:00:00.x"}},
		{"timestamptz", time.Hour, []string{veilCanary, "2024-03-15 12:00:00+" + veilCanary}},
		{"integer[]", 0.1, []string{"{1," + veilCanary + "}"}},
	} {
		tr := noiseOf(t, k, tt.typ, tt.arg)
		for _, in := range tt.ins {
			_, err := veilRun(tr, in)
			veilMaskError(t, err, in)
		}
	}
}

func BenchmarkNoiseInt(b *testing.B) {
	k := testKeys(b, pgtest.Secret)
	tr := noiseOf(b, k, "integer", 0.05)
	in := schema.Text("1234567")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Transform(in); err != nil {
			b.Fatal(err)
		}
	}
}

// The tests below are the attacks of issue 17, finding 3: each combines
// outputs of noise (two rules on the same value, many updates of one
// value) to get the original back. Noise that depended on the value alone
// let them recover it exactly, or narrow it by sqrt(updates).

// TestNoiseTwoRatiosDoNotCancel: the same value under {noise: 0.05} and
// {noise: 0.2}. With one draw u shared by both, y1 = x(1+0.05u) and
// y2 = x(1+0.2u) give x = (r1 y2 - r2 y1)/(r1 - r2) exactly. With draws
// keyed by the ratio, the estimate is off by as much as the noise.
func TestNoiseTwoRatiosDoNotCancel(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	const r1, r2 = 0.05, 0.2
	for _, typ := range []string{"numeric(12,2)", "double precision", "integer"} {
		a, b := noiseOf(t, k, typ, r1), noiseOf(t, k, typ, r2)
		var errs []float64
		exact := 0
		for i := range 1000 {
			x := 1000 + float64(i)*137.31
			in := strconv.FormatFloat(x, 'f', 2, 64)
			if typ == "integer" {
				x = math.Round(x)
				in = strconv.FormatFloat(x, 'f', 0, 64)
			}
			y1, _ := strconv.ParseFloat(apply(t, a, in), 64)
			y2, _ := strconv.ParseFloat(apply(t, b, in), 64)
			est := (r1*y2 - r2*y1) / (r1 - r2)
			e := math.Abs(est-x) / x
			errs = append(errs, e)
			if e < 1e-4 {
				exact++
			}
		}
		slices.Sort(errs)
		// Independent uniform draws: the median error is about
		// 0.067*0.59 = 4% of the value; shared draws give ~0.
		if med := errs[len(errs)/2]; med < 0.01 {
			t.Errorf("%s: two ratios recover the value to %.4f%% (median)", typ, 100*med)
		}
		if exact > 50 {
			t.Errorf("%s: two ratios recover %d of 1000 values to 0.01%%", typ, exact)
		}
	}
}

// TestNoiseTwoDurationsDoNotCancel: a date under {noise: 30d} and
// {noise: 90d}. With a shared draw the same formula gives the date back
// within a day or two; keyed draws leave an error of weeks.
func TestNoiseTwoDurationsDoNotCancel(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	day := 24 * time.Hour
	for _, typ := range []string{"date", "timestamp"} {
		a, b := noiseOf(t, k, typ, 30*day), noiseOf(t, k, typ, 90*day)
		base := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC)
		total, close := 0.0, 0
		const n = 1000
		for i := range n {
			x := base.AddDate(0, 0, 23*i)
			in := x.Format(time.DateOnly)
			if typ == "timestamp" {
				in = x.Add(time.Duration(i) * 7919 * time.Second).Format(time.DateTime)
				x = pgInstant(t, in)
			}
			y1 := pgInstant(t, apply(t, a, in)).Sub(x).Hours() / 24
			y2 := pgInstant(t, apply(t, b, in)).Sub(x).Hours() / 24
			// Days from x: x itself is 0, so the estimate's error is the estimate.
			est := math.Abs((30*y2 - 90*y1) / (30 - 90))
			total += est
			if est <= 2 {
				close++
			}
		}
		// Independent draws: the error is 45|u1-u2| days, 15 days on average.
		if mean := total / n; mean < 5 {
			t.Errorf("%s: 30d and 90d recover the date within %.1f days on average", typ, mean)
		}
		if close > n/5 {
			t.Errorf("%s: 30d and 90d recover %d of %d dates within 2 days", typ, close, n)
		}
	}
}

// TestNoiseAveragingUpdatesGainsNothing: a counter updated 200 times by
// small known steps. With fresh noise at every value, the mean of
// (y_i - step_i) narrows the error by sqrt(200) (±250 becomes ±18); with
// noise constant over buckets as wide as the noise, it stays about the
// error of one observation.
func TestNoiseAveragingUpdatesGainsNothing(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, typ := range []string{"integer", "numeric(12,2)", "double precision"} {
		tr := noiseOf(t, k, typ, 0.05)
		rng := rand.New(rand.NewPCG(1, 2))
		var single, averaged float64
		const counters, updates = 300, 200
		for c := range counters {
			x0 := int64(5000 + 997*c)
			x, sum := x0, 0.0
			for i := range updates {
				y, err := strconv.ParseFloat(apply(t, tr, strconv.FormatInt(x, 10)), 64)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					e := (y - float64(x0)) / float64(x0)
					single += e * e
				}
				sum += y - float64(x-x0) // the attacker knows the steps
				x += 1 + rng.Int64N(3)
			}
			e := (sum/updates - float64(x0)) / float64(x0)
			averaged += e * e
		}
		ratio := math.Sqrt(averaged / single)
		// Fresh noise: ratio ~ 1/sqrt(200) = 0.07. Bucketed: ~1 (a
		// counter crosses an edge now and then and mixes two draws).
		if ratio < 0.6 {
			t.Errorf("%s: averaging %d updates cuts the error to %.2f of one observation's", typ, updates, ratio)
		}
	}
}

// TestNoiseSameValueSameDraw: noise follows the value, not its type or
// text form, so an integer and a numeric copy of a column, or a date and
// a timestamp, are one observation, not two.
func TestNoiseSameValueSameDraw(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, x := range []int64{7, 1234, 98765, 123456789} {
		in := strconv.FormatInt(x, 10)
		yi, _ := strconv.ParseFloat(apply(t, noiseOf(t, k, "bigint", 0.1), in), 64)
		for _, tt := range []struct{ typ, in string }{
			{"numeric", in}, {"numeric(14,2)", in + ".00"}, {"double precision", in}, {"real", in},
			{"numeric", in + ".000"},
		} {
			y, _ := strconv.ParseFloat(apply(t, noiseOf(t, k, tt.typ, 0.1), tt.in), 64)
			// The integer's offset is the others' cut to a whole number
			// (real: to float32's precision).
			if math.Abs(y-yi) >= 1+1e-7*float64(x) {
				t.Errorf("noise 0.1 of %d: %v as bigint, %v as %s %s", x, yi, y, tt.typ, tt.in)
			}
		}
	}
	day := 24 * time.Hour
	for i := range 200 {
		d := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 3*i)
		yd := pgInstant(t, apply(t, noiseOf(t, k, "date", 30*day), d.Format(time.DateOnly)))
		yt := pgInstant(t, apply(t, noiseOf(t, k, "timestamp", 30*day), d.Format(time.DateTime)))
		if diff := yd.Sub(yt).Abs(); diff > 12*time.Hour {
			t.Errorf("noise 30d of %s: %s as a date, %s as a timestamp", d.Format(time.DateOnly), yd, yt)
		}
	}
}

// TestNoiseConstantWithinBucket: a value moving by small steps keeps its
// offset most of the time, within the documented bound everywhere.
func TestNoiseConstantWithinBucket(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := noiseOf(t, k, "integer", 0.05)
	jumps := 0
	prev := int64(0)
	for x := int64(100000); x < 110000; x++ {
		y, _ := strconv.ParseInt(apply(t, tr, strconv.FormatInt(x, 10)), 10, 64)
		if math.Abs(float64(y-x)) > 0.05*float64(x) {
			t.Fatalf("noise 0.05 of %d = %d", x, y)
		}
		if x > 100000 && y-x != prev {
			jumps++
		}
		prev = y - x
	}
	// 10000 steps over buckets about 5000 wide: a few edges.
	if jumps == 0 || jumps > 6 {
		t.Errorf("the offset changed %d times over 10000 unit steps", jumps)
	}
}
