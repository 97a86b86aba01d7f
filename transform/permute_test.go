package transform

import (
	"math"
	"testing"
)

func TestPermuteRangeIsBijection(t *testing.T) {
	key := [2]uint64{1, 2}
	for _, n := range []uint64{1, 2, 3, 7, 10, 100, 257, 1000, 1 << 12, 10007} {
		seen := make([]bool, n)
		fixed := 0
		for x := uint64(0); x < n; x++ {
			y := permuteRange(key, 0, n, x)
			if y >= n {
				t.Fatalf("n=%d: %d -> %d out of range", n, x, y)
			}
			if seen[y] {
				t.Fatalf("n=%d: %d collides", n, y)
			}
			seen[y] = true
			if x == y {
				fixed++
			}
		}
		// A random permutation has about one fixed point; many means no mixing.
		if n >= 100 && fixed > 10 {
			t.Errorf("n=%d: %d fixed points", n, fixed)
		}
	}
}

func TestPermuteRangeDependsOnKeyAndTweak(t *testing.T) {
	const n = 1 << 20
	a := permuteRange([2]uint64{1, 2}, 0, n, 12345)
	if b := permuteRange([2]uint64{1, 3}, 0, n, 12345); a == b {
		t.Error("another key gives the same image")
	}
	if c := permuteRange([2]uint64{1, 2}, 9, n, 12345); a == c {
		t.Error("another tweak gives the same image")
	}
	if d := permuteRange([2]uint64{1, 2}, 0, n, 12345); a != d {
		t.Error("not deterministic")
	}
}

func TestPermuteInt64KeepsSignAndBand(t *testing.T) {
	key := [2]uint64{42, 7}
	for _, x := range []int64{0, 1, -1, 2, 100, -100, math.MaxInt16, math.MinInt16,
		math.MaxInt16 + 1, math.MinInt16 - 1, math.MaxInt32, math.MinInt32,
		math.MaxInt32 + 1, math.MinInt32 - 1, math.MaxInt64, math.MinInt64, 1 << 40, -(1 << 50)} {
		y := newIntPRPs(key).permuteInt64(x)
		if (x < 0) != (y < 0) {
			t.Errorf("%d -> %d changes sign", x, y)
		}
		for _, lim := range []struct{ lo, hi int64 }{
			{math.MinInt16, math.MaxInt16},
			{math.MinInt32, math.MaxInt32},
		} {
			if x >= lim.lo && x <= lim.hi && (y < lim.lo || y > lim.hi) {
				t.Errorf("%d -> %d leaves [%d, %d]", x, y, lim.lo, lim.hi)
			}
			if (x < lim.lo || x > lim.hi) && y >= lim.lo && y <= lim.hi {
				t.Errorf("%d -> %d enters [%d, %d]", x, y, lim.lo, lim.hi)
			}
		}
	}
}

func TestPermuteInt64SmallintIsBijection(t *testing.T) {
	key := [2]uint64{3, 4}
	seen := make(map[int64]bool, 1<<16)
	for x := int64(math.MinInt16); x <= math.MaxInt16; x++ {
		y := newIntPRPs(key).permuteInt64(x)
		if y < math.MinInt16 || y > math.MaxInt16 || seen[y] {
			t.Fatalf("%d -> %d: out of range or collision", x, y)
		}
		seen[y] = true
	}
}

func TestPermute128IsInjectiveOnSample(t *testing.T) {
	p := newUUIDPRP([2]uint64{5, 6})
	seen := map[[2]uint64]bool{}
	for i := uint64(0); i < 10000; i++ {
		hi, lo := p.permute(0, i)
		if seen[[2]uint64{hi, lo}] {
			t.Fatalf("collision at %d", i)
		}
		seen[[2]uint64{hi, lo}] = true
	}
}

func BenchmarkPermuteInt64(b *testing.B) {
	p := newIntPRPs([2]uint64{1, 2})
	b.ReportAllocs()
	for i := range b.N {
		p.permuteInt64(int64(i) << 33)
	}
}
