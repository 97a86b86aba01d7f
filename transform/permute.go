package transform

import (
	"encoding/binary"
	"math/bits"
)

// feistelRounds is the number of rounds of the permutations; FF1 (NIST
// SP 800-38G) uses ten for the same alternating Feistel structure.
const feistelRounds = 10

// prp is a keyed pseudo-random permutation of [0, n): a bijection, so
// hashed keys stay unique. Construction: an alternating Feistel network
// (the FF1 structure over radix 2) on the smallest bit width that holds
// n-1, with SipHash-2-4 under a per-domain key as the round function, and
// cycle walking to stay below n (at most two steps on average).
//
// Building a prp costs two SipHash calls; transformers build the ones
// they need once, when the plan is built.
type prp struct {
	k0, k1 uint64 // SipHash key of this domain, derived from the key, tweak and n
	n      uint64
	u, v   uint // bit widths of the Feistel halves; v <= 32
}

func newPRP(key [2]uint64, tweak, n uint64) prp {
	var buf [17]byte
	binary.LittleEndian.PutUint64(buf[:8], tweak)
	binary.LittleEndian.PutUint64(buf[8:16], n)
	p := prp{n: n}
	p.k0 = siphash24(key[0], key[1], buf[:])
	buf[16] = 1
	p.k1 = siphash24(key[0], key[1], buf[:])
	if n > 1 {
		width := uint(bits.Len64(n - 1))
		p.u = width / 2
		p.v = width - p.u
	}
	return p
}

// permute returns the image of x, 0 <= x < n.
func (p prp) permute(x uint64) uint64 {
	if p.n <= 1 {
		return 0
	}
	if x >= p.n {
		// Callers never do this; cycle walking from outside the domain
		// might never come back into it, so fold the input in.
		x %= p.n
	}
	for {
		x = p.feistel(x)
		if x < p.n {
			return x
		}
	}
}

func (p prp) feistel(x uint64) uint64 {
	a := x >> p.v
	b := x & (1<<p.v - 1)
	var buf [8]byte
	for i := range feistelRounds {
		m := p.u
		if i%2 == 1 {
			m = p.v
		}
		// b < 2^32, so the round number fits in the top byte.
		binary.LittleEndian.PutUint64(buf[:], b|uint64(i)<<56)
		c := (a + siphash24(p.k0, p.k1, buf[:])) & (1<<m - 1)
		a, b = b, c
	}
	return a<<p.v | b
}

// permuteRange is newPRP(key, tweak, n).permute(x), for domains that are
// only known per value.
func permuteRange(key [2]uint64, tweak, n, x uint64) uint64 {
	return newPRP(key, tweak, n).permute(x)
}

// Tweaks separate the permutations of the different uses.
const (
	tweakInteger uint64 = 1 + iota
	tweakDecimal
	tweakUUID
)

// intBands: an integer keeps its sign and its band, so a value that fits
// in smallint maps to one that fits in smallint, and likewise for integer
// and bigint. The same value therefore gets the same hash in a smallint,
// integer, bigint or integral numeric column, and every column's hash is a
// bijection of its own type's range.
var intBands = [...]struct{ lo, hi uint64 }{
	{0, 1 << 15},
	{1 << 15, 1 << 31},
	{1 << 31, 1 << 63},
}

// intPRPs are the permutations of the integer bands, by sign.
type intPRPs [2][len(intBands)]prp

func newIntPRPs(key [2]uint64) *intPRPs {
	var p intPRPs
	for sign := range 2 {
		for i, band := range intBands {
			p[sign][i] = newPRP(key, tweakInteger|uint64(sign)<<32, band.hi-band.lo)
		}
	}
	return &p
}

// permuteInt64 is the keyed bijection on int64 described at intBands.
func (p *intPRPs) permuteInt64(x int64) int64 {
	sign := 0
	u := uint64(x)
	if x < 0 {
		sign = 1
		u = uint64(-(x + 1)) // -1 -> 0, min int64 -> max int64
	}
	for i, band := range intBands {
		if u < band.hi {
			u = band.lo + p[sign][i].permute(u-band.lo)
			break
		}
	}
	if sign == 1 {
		return -int64(u) - 1
	}
	return int64(u)
}

// uuidPRP is a balanced Feistel permutation of 128-bit values, with a
// SipHash key per round.
type uuidPRP [feistelRounds][2]uint64

func newUUIDPRP(key [2]uint64) *uuidPRP {
	var p uuidPRP
	var buf [9]byte
	binary.LittleEndian.PutUint64(buf[:8], tweakUUID)
	for i := range p {
		buf[8] = byte(i)
		p[i][0] = siphash24(key[0], key[1], buf[:])
		p[i][1] = siphash24(key[1], key[0], buf[:])
	}
	return &p
}

func (p *uuidPRP) permute(hi, lo uint64) (uint64, uint64) {
	var buf [8]byte
	for i := range p {
		binary.LittleEndian.PutUint64(buf[:], lo)
		hi, lo = lo, hi^siphash24(p[i][0], p[i][1], buf[:])
	}
	return hi, lo
}
