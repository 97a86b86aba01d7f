package transform

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
)

// Independent rerun of issue 17 findings 3, 4, 6, 9 (variants).

// rerun17TwoRatio returns the median relative error of the two-ratio
// estimate x = (r1 y2 - r2 y1)/(r1 - r2) over many values.
func rerun17TwoRatio(t *testing.T, f1, f2 func(string) float64, r1, r2 float64, integer bool) (med float64, exact int) {
	var errs []float64
	for i := range 800 {
		x := 500 + float64(i)*91.37
		in := strconv.FormatFloat(x, 'f', 2, 64)
		if integer {
			x = math.Round(x)
			in = strconv.FormatFloat(x, 'f', 0, 64)
		}
		y1, y2 := f1(in), f2(in)
		est := (r1*y2 - r2*y1) / (r1 - r2)
		e := math.Abs(est-x) / x
		errs = append(errs, e)
		if e < 1e-3 {
			exact++
		}
	}
	slices.Sort(errs)
	return errs[len(errs)/2], exact
}

func TestRerun17NoiseRatio005vs01(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	num := func(tr Transformer) func(string) float64 {
		return func(s string) float64 {
			y, err := strconv.ParseFloat(apply(t, tr, s), 64)
			if err != nil {
				t.Fatal(err)
			}
			return y
		}
	}
	inJSON := func(r float64) func(string) float64 {
		tr := jsonOf(t, k, "jsonb", at("$.v", "noise", Args{"ratio": r}))
		return func(s string) float64 {
			out := apply(t, tr, `{"v": `+s+`}`)
			v := strings.TrimSuffix(strings.TrimPrefix(out, `{"v": `), "}")
			v = strings.Trim(v, `"`)
			y, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("json out %s: %v", out, err)
			}
			return y
		}
	}
	for _, tc := range []struct {
		name    string
		a, b    func(string) float64
		integer bool
	}{
		{"integer", num(noiseOf(t, k, "integer", 0.05)), num(noiseOf(t, k, "integer", 0.1)), true},
		{"bigint", num(noiseOf(t, k, "bigint", 0.05)), num(noiseOf(t, k, "bigint", 0.1)), true},
		{"numeric(12,2)", num(noiseOf(t, k, "numeric(12,2)", 0.05)), num(noiseOf(t, k, "numeric(12,2)", 0.1)), false},
		{"numeric", num(noiseOf(t, k, "numeric", 0.05)), num(noiseOf(t, k, "numeric", 0.1)), false},
		{"integer col 0.05 vs json 0.1", num(noiseOf(t, k, "integer", 0.05)), inJSON(0.1), true},
		{"json 0.05 vs numeric 0.1", inJSON(0.05), num(noiseOf(t, k, "numeric(12,2)", 0.1)), false},
		{"json 0.05 vs json 0.1", inJSON(0.05), inJSON(0.1), false},
	} {
		med, exact := rerun17TwoRatio(t, tc.a, tc.b, 0.05, 0.1, tc.integer)
		t.Logf("%s: median error %.3f%%, %d/800 within 0.1%%", tc.name, 100*med, exact)
		if med < 0.01 || exact > 40 {
			t.Errorf("%s: 0.05 and 0.1 recover the value (median %.4f%%, %d exact)", tc.name, 100*med, exact)
		}
	}
}

// Dates under 1d and 7d, 7d and 30d: the combination must not beat the
// finer column alone.
func TestRerun17NoiseDates1dVs7d(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	day := 24 * time.Hour
	for _, pair := range [][2]int{{1, 7}, {7, 30}} {
		for _, typ := range []string{"date", "timestamptz"} {
			a, b := noiseOf(t, k, typ, time.Duration(pair[0])*day), noiseOf(t, k, typ, time.Duration(pair[1])*day)
			base := time.Date(1970, 3, 1, 0, 0, 0, 0, time.UTC)
			const n = 1000
			exactComb, exactFine := 0, 0
			for i := range n {
				x := base.AddDate(0, 0, 17*i)
				in := x.Format(time.DateOnly)
				if typ == "timestamptz" {
					in = x.Add(time.Duration(i)*3613*time.Second).Format("2006-01-02 15:04:05") + "+00"
					x = pgInstant(t, in)
				}
				d1 := pgInstant(t, apply(t, a, in)).Sub(x).Hours() / 24
				d2 := pgInstant(t, apply(t, b, in)).Sub(x).Hours() / 24
				r1, r2 := float64(pair[0]), float64(pair[1])
				est := (r1*d2 - r2*d1) / (r1 - r2)
				if math.Abs(est) < 0.5 {
					exactComb++
				}
				if math.Abs(d1) < 0.5 {
					exactFine++
				}
			}
			t.Logf("%s %dd/%dd: combination within half a day %d/%d, finer column alone %d/%d", typ, pair[0], pair[1], exactComb, n, exactFine, n)
			if exactComb > exactFine+n/10 {
				t.Errorf("%s %dd vs %dd: combination recovers %d/%d (finer alone %d)", typ, pair[0], pair[1], exactComb, n, exactFine)
			}
		}
	}
}

// Finding 9 for kinds other than email: unique vs plain of username and
// url must not share the generated part.
func TestRerun17FakeUsernameURLUniqueUnlinkable(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	strip := func(s string) string { // drop a unique tag, whatever its separator
		if len(s) > uniqueTagLen+1 {
			return s[:len(s)-uniqueTagLen-1]
		}
		return s
	}
	for _, kind := range []string{"username", "url"} {
		plain := fakeOf(t, k, "text", Args{"kind": kind})
		uniq := fakeOf(t, k, "text", Args{"kind": kind, "unique": true})
		const n = 400
		same, prefix := 0, 0
		for j := range n {
			in := fmt.Sprintf("user%d@corp-%d.example.com", j, j%5)
			p, u := apply(t, plain, in), apply(t, uniq, in)
			if j < 3 {
				t.Logf("%s: plain %q unique %q", kind, p, u)
			}
			if p == strip(u) {
				same++
			}
			core := func(s string) string { // username body or url host
				s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
				s, _, _ = strings.Cut(s, "/")
				if len(s) > 12 {
					s = s[:12]
				}
				return s
			}
			if core(p) == core(u) {
				prefix++
			}
		}
		if same > n/20 || prefix > n/10 {
			t.Errorf("%s: plain and unique link: %d equal, %d share a prefix of %d", kind, same, prefix, n)
		}
	}
	// username and email local part must not be linkable either.
	em := fakeOf(t, k, "text", Args{"kind": "email"})
	us := fakeOf(t, k, "text", Args{"kind": "username"})
	same := 0
	for j := range 400 {
		in := fmt.Sprintf("user%d@corp.example.com", j)
		l, _, _ := strings.Cut(apply(t, em, in), "@")
		if l == apply(t, us, in) {
			same++
		}
	}
	if same > 20 {
		t.Errorf("email local part equals username for %d of 400", same)
	}
}

// Finding 4: names at any depth, nested objects, and collisions.
func TestRerun17JSONNamesNested(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	h := func(s string) string { return apply(t, build(t, k, "text", Rule{Name: "hash"}), s) }
	in := `{"x": {"alice@corp.com": 1, "x": {"bob@corp.com": {"x": 2}}}, "l": [{"x": {"carol@corp.com": 3}}]}`
	// $..x.*~ : names of the members of every x object, at any depth.
	out := apply(t, jsonOf(t, k, "jsonb", at("$..x.*~", "hash", nil)), in)
	t.Logf("$..x.*~ -> %s", out)
	for _, leak := range []string{"alice", "bob", "carol"} {
		if strings.Contains(out, leak) {
			t.Errorf("$..x.*~ keeps %s: %s", leak, out)
		}
	}
	// $..x~ masks the names x at every depth (inside arrays too).
	out = apply(t, jsonOf(t, k, "jsonb", at("$..x~", "hash", nil)), in)
	t.Logf("$..x~ -> %s", out)
	if strings.Contains(out, `"x"`) {
		t.Errorf("$..x~ left a name x: %s", out)
	}
	if !strings.Contains(out, h("x")) {
		t.Errorf("$..x~ did not hash x: %s", out)
	}
	// Collision between a masked nested name and a kept sibling.
	_, err := veilRun(jsonOf(t, k, "jsonb", at("$..x~", "redact", Args{"value": "y"})), `{"a": {"b": {"x": "SECRET-1", "y": "SECRET-2"}}}`)
	veilWantErr(t, err, "masked member names collide", "SECRET")
	// Collision between two masked names via truncate, nested in array.
	_, err = veilRun(jsonOf(t, k, "jsonb", at("$..c.*~", "truncate", Args{"length": int64(4)})), `{"l": [{"c": {"alice1": 1, "alice2": 2}}]}`)
	veilWantErr(t, err, "masked member names collide", "alice")
	// Collision at one level where a kept key equals a hashed one.
	hx := h("k")
	_, err = veilRun(jsonOf(t, k, "jsonb", at("$.o.k~", "hash", nil)), `{"o": {"k": 1, "`+hx+`": 2}}`)
	veilWantErr(t, err, "masked member names collide", "SECRET")
	// Fake (non unique) on names: many names, collisions fail closed, never merge.
	var b strings.Builder
	b.WriteString(`{"c": {`)
	for i := range 3000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"u%d@corp.com": %d`, i, i)
	}
	b.WriteString("}}")
	o, err := veilRun(jsonOf(t, k, "jsonb", at("$.c.*~", "fake", Args{"kind": "first_name"})), b.String())
	if err == nil {
		if strings.Contains(string(o.Text), "@corp.com") {
			t.Errorf("fake names kept originals")
		}
		if c := strings.Count(string(o.Text), ":"); c != 3000 {
			t.Errorf("fake names merged members: %d of 3000 left", c)
		}
	} else {
		t.Logf("fake first_name on 3000 names: %v", err)
	}
}

// Finding 6: deep, mixed documents through $..a.
func TestRerun17JSONDeepMixed(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	const depth = 60000
	var open, close strings.Builder
	for i := range depth {
		switch i % 3 {
		case 0:
			open.WriteString(`{"a": `)
		case 1:
			open.WriteString(`[1, `)
		case 2:
			open.WriteString(`{"b": "SECRET", "a": `)
		}
	}
	for i := depth - 1; i >= 0; i-- {
		switch i % 3 {
		case 0, 2:
			close.WriteString(`}`)
		case 1:
			close.WriteString(`]`)
		}
	}
	in := open.String() + `"LEAF-SECRET"` + close.String()
	for _, typ := range []string{"jsonb", "json"} {
		for _, p := range [][]PathRule{
			{at("$..a", "hash", nil)},
			{at("$..a", "redact", redactX)},
			{at("$..b", "drop", nil)},
			{at("$..a~", "hash", nil), at("$..b", "redact", redactX)},
			{at("$..a", "drop", nil)},
		} {
			out, err := veilRun(jsonOf(t, k, typ, p...), in)
			if err != nil {
				t.Errorf("%s %v: %v", typ, p[0].Path, err)
				continue
			}
			o := string(out.Text)
			leaf := strings.Contains(o, "LEAF-SECRET")
			b := strings.Contains(o, `"SECRET"`)
			if (p[0].Path == "$..a" && leaf) || (p[0].Path != "$..a" && b) || (p[0].Path == "$..a~" && strings.Contains(o, `"a"`)) {
				t.Errorf("%s %v: secret remains", typ, p[0].Path)
			}
		}
	}
}
