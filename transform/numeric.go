package transform

import (
	"math"
	"math/big"
	"strconv"
)

// decimal is a parsed numeric value: (-1)^neg * digits * 10^-scale.
// digits holds ASCII digits without leading zeros ("0" for zero).
type decimal struct {
	neg    bool
	digits []byte
	scale  int
	nan    bool
	inf    bool // with neg: -Infinity
}

var errNumber = invalid("not a valid number")

// parseDecimal parses numeric text ("-12.50", "NaN", "Infinity") and, for
// values found in JSON, an exponent ("1.5e3").
func parseDecimal(b []byte) (decimal, error) {
	var d decimal
	switch string(b) {
	case "NaN":
		d.nan = true
		return d, nil
	case "Infinity", "+Infinity":
		d.inf = true
		return d, nil
	case "-Infinity":
		d.inf, d.neg = true, true
		return d, nil
	}
	i := 0
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		d.neg = b[i] == '-'
		i++
	}
	digits := make([]byte, 0, len(b))
	seen, point := false, false
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
			seen = true
			if point {
				d.scale++
			}
		case c == '.' && !point:
			point = true
		default:
			goto exponent
		}
	}
exponent:
	if !seen {
		return d, errNumber
	}
	if i < len(b) {
		if b[i] != 'e' && b[i] != 'E' {
			return d, errNumber
		}
		e, err := strconv.Atoi(string(b[i+1:]))
		if err != nil || e > 1000 || e < -1000 {
			return d, errNumber
		}
		d.scale -= e
		if d.scale < 0 {
			for range -d.scale {
				digits = append(digits, '0')
			}
			d.scale = 0
		}
	}
	// Strip leading zeros, keeping the integer part's last digit.
	z := 0
	for z < len(digits)-d.scale-1 && digits[z] == '0' {
		z++
	}
	d.digits = digits[z:]
	// Digits may now be fewer than the scale ("0.05" -> "005", scale 3, kept).
	if d.isZero() {
		d.neg = false
	}
	return d, nil
}

func (d decimal) isZero() bool {
	for _, c := range d.digits {
		if c != '0' {
			return false
		}
	}
	return true
}

// intDigits counts the digits before the decimal point, leading zeros
// left out, as numeric(p,s) limits them: 0.5 has none, so it fits
// numeric(3,3).
func (d decimal) intDigits() int {
	n := len(d.digits) - d.scale
	i := 0
	for i < n && d.digits[i] == '0' {
		i++
	}
	return max(n-i, 0)
}

// normalize strips trailing fractional zeros and leading zeros.
func (d decimal) normalize() decimal {
	for d.scale > 0 && len(d.digits) > 0 && d.digits[len(d.digits)-1] == '0' {
		d.digits = d.digits[:len(d.digits)-1]
		d.scale--
	}
	z := 0
	for z < len(d.digits)-1 && d.digits[z] == '0' {
		z++
	}
	d.digits = d.digits[z:]
	if len(d.digits) == 0 {
		d.digits = []byte{'0'}
	}
	return d
}

// unscaled returns the digits as an integer when they fit in int64.
func (d decimal) unscaled() (uint64, bool) {
	if len(d.digits) > 18 {
		return 0, false
	}
	var u uint64
	for _, c := range d.digits {
		u = u*10 + uint64(c-'0')
	}
	return u, true
}

func (d decimal) bigUnscaled() *big.Int {
	n, _ := new(big.Int).SetString(string(d.digits), 10)
	if n == nil {
		n = new(big.Int)
	}
	if d.neg {
		n.Neg(n)
	}
	return n
}

// appendScaled writes sign * u * 10^-scale.
func appendScaled(dst []byte, neg bool, u uint64, scale int) []byte {
	var buf [24]byte
	s := strconv.AppendUint(buf[:0], u, 10)
	return appendScaledDigits(dst, neg && u != 0, s, scale)
}

func appendScaledDigits(dst []byte, neg bool, s []byte, scale int) []byte {
	if neg {
		dst = append(dst, '-')
	}
	if scale <= 0 {
		return append(dst, s...)
	}
	if len(s) <= scale {
		dst = append(dst, '0', '.')
		for range scale - len(s) {
			dst = append(dst, '0')
		}
		return append(dst, s...)
	}
	dst = append(dst, s[:len(s)-scale]...)
	dst = append(dst, '.')
	return append(dst, s[len(s)-scale:]...)
}

// appendBigScaled writes n * 10^-scale.
func appendBigScaled(dst []byte, n *big.Int, scale int) []byte {
	neg := n.Sign() < 0
	s := new(big.Int).Abs(n).String()
	return appendScaledDigits(dst, neg, []byte(s), scale)
}

var pow10 = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// parseInt parses a PostgreSQL integer of the given bit size.
func parseInt(b []byte, bitSize int) (int64, error) {
	i := 0
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		i++
	}
	if i == len(b) {
		return 0, errNumber
	}
	var u uint64
	for ; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, invalid("not a valid integer")
		}
		if u > (math.MaxUint64-9)/10 {
			return 0, invalid("integer out of range")
		}
		u = u*10 + uint64(c-'0')
	}
	limit := uint64(1) << (bitSize - 1)
	if (!neg && u >= limit) || (neg && u > limit) {
		return 0, invalid("integer out of range")
	}
	if neg {
		return -int64(u-1) - 1, nil
	}
	return int64(u), nil
}
