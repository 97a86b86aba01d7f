package transform

import (
	"encoding/binary"
	"math/bits"
)

// feistelRounds is the number of rounds of the permutation; FF1 (NIST
// SP 800-38G) uses ten for the same alternating Feistel structure.
const feistelRounds = 10

// permuteRange returns the image of x, 0 <= x < n, under a keyed permutation
// of [0, n). It is a bijection for every n >= 1, so hashed keys stay unique.
// The permutation depends on n and on tweak, so different domains are
// independent of one another.
//
// Construction: an alternating Feistel network (the FF1 structure over radix
// 2) on the smallest bit width that holds n-1, with SipHash-2-4 as the round
// function, and cycle walking to stay below n (at most two steps on average).
func permuteRange(key [2]uint64, tweak uint64, n, x uint64) uint64 {
	if n <= 1 {
		return 0
	}
	if x >= n {
		// Callers never do this; cycle walking from outside the domain
		// might never come back into it, so fold the input in.
		x %= n
	}
	width := bits.Len64(n - 1)
	for {
		x = feistel(key, tweak, n, width, x)
		if x < n {
			return x
		}
	}
}

func feistel(key [2]uint64, tweak, n uint64, width int, x uint64) uint64 {
	u := width / 2
	v := width - u
	a := x >> v
	b := x & (1<<v - 1)
	var buf [25]byte
	binary.LittleEndian.PutUint64(buf[1:], tweak)
	binary.LittleEndian.PutUint64(buf[9:], n)
	for i := range feistelRounds {
		m := u
		if i%2 == 1 {
			m = v
		}
		buf[0] = byte(i)
		binary.LittleEndian.PutUint64(buf[17:], b)
		f := siphash24(key[0], key[1], buf[:])
		c := (a + f) & (1<<m - 1)
		a, b = b, c
	}
	return a<<v | b
}

// Tweaks separate the permutations built on permuteRange.
const (
	tweakInteger uint64 = 1 + iota
	tweakDecimal
	tweakUUID
)

// integer domain bands: a value keeps its sign and its band, so an integer
// that fits in smallint maps to one that fits in smallint, and likewise for
// integer and bigint. The same value therefore gets the same hash in a
// smallint, integer, bigint or integral numeric column, and every column's
// hash is a bijection of its own type's range.
var intBands = [...]struct{ lo, hi uint64 }{
	{0, 1 << 15},
	{1 << 15, 1 << 31},
	{1 << 31, 1 << 63},
}

// permuteInt64 is the keyed bijection on int64 described above.
func permuteInt64(key [2]uint64, x int64) int64 {
	neg := x < 0
	u := uint64(x)
	if neg {
		u = uint64(-(x + 1)) // -1 -> 0, min int64 -> max int64
	}
	for _, band := range intBands {
		if u < band.hi {
			tw := tweakInteger
			if neg {
				tw |= 1 << 32
			}
			u = band.lo + permuteRange(key, tw, band.hi-band.lo, u-band.lo)
			break
		}
	}
	if neg {
		return -int64(u) - 1
	}
	return int64(u)
}
