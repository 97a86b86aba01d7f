package transform

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"pgveil/schema"
	"strconv"
)

// The hash transformer replaces a value with a keyed pseudonym of the same
// type. The same input gives the same output in every table, so a hashed
// primary key still joins with its hashed foreign keys.
//
//   - integers: a keyed permutation (see intBands) that keeps the sign
//     and the smallint/integer/bigint range, so it is unique and in range;
//   - numeric(p,s): a keyed permutation of the values that fit p and s; an
//     unconstrained numeric keeps its digit count and scale, and integers
//     that fit a bigint hash as they do in integer columns;
//   - uuid: a keyed permutation of the 128 bits: unique, still a uuid;
//   - text, varchar(n), char(n): 32 lowercase hex digits of
//     HMAC-SHA256(key, value), cut to n characters (n >= 16 stays practically
//     unique); char(n) ignores trailing blanks, as PostgreSQL does;
//   - bytea: the 32 bytes of HMAC-SHA256(key, bytes).
func hashSpec() *Spec {
	return &Spec{
		Name:    "hash",
		Doc:     "Keyed pseudonym of the same type: integers stay integers in range, uuids stay uuids, text becomes 32 hex digits (cut to varchar(n)). Same input, same output in every table, so joins on hashed keys still work.",
		KeySafe: true,
		New:     newHash,
	}
}

// minUniqueHashLen is the shortest text hash that stays practically unique
// (64 bits: a collision among a billion rows has odds of about 1 in 40).
const minUniqueHashLen = 16

func newHash(c schema.Column, _ Args, k *Keys, _ *Registry) (Transformer, error) {
	t := c.Type
	switch t.Kind {
	case schema.KindInt:
		return hashInt{keys: k, bits: t.Bits}, nil
	case schema.KindNumeric:
		h := hashNumeric{keys: k, precision: t.Precision, scale: t.Scale}
		if p := t.Precision; p > 0 && p <= 18 {
			tw := tweakDecimal | uint64(p)<<8 | uint64(t.Scale)<<16 | 1<<24
			h.pos = newPRP(k.perm, tw, pow10[p])
			h.neg = newPRP(k.perm, tw|1<<25, pow10[p]-1)
		}
		return h, nil
	case schema.KindUUID:
		return hashUUID{keys: k}, nil
	case schema.KindText:
		if t.Length > 0 && t.Length < minUniqueHashLen && (c.PrimaryKey || c.Unique) {
			return nil, fmt.Errorf("%s is too short for a unique hash: hashed keys need at least %d characters", t, minUniqueHashLen)
		}
		return hashText{keys: k, length: t.Length, blankPadded: t.Name == "character"}, nil
	case schema.KindBytea:
		return hashBytea{keys: k}, nil
	}
	return nil, fmt.Errorf("hash does not apply to %s columns; use %s", t, suggestFor(t))
}

// suggestFor names the transformers that fit a type, for error messages.
func suggestFor(t schema.Type) string {
	switch t.Kind {
	case schema.KindFloat:
		return "noise, truncate or redact"
	case schema.KindDate, schema.KindTimestamp, schema.KindTimestampTZ:
		return "truncate, noise or fake: date_of_birth"
	case schema.KindJSON, schema.KindJSONB:
		return "json (with hash at the paths that hold keys)"
	case schema.KindInet:
		return "fake: ipv4, redact or null"
	case schema.KindBool:
		return "keep, redact or null"
	}
	return "keep, redact, null or drop"
}

type hashInt struct {
	keys *Keys
	bits int
}

func (h hashInt) Transform(v schema.Value) (schema.Value, error) {
	x, err := parseInt(v.Text, h.bits)
	if err != nil {
		return schema.Value{}, err
	}
	y := h.keys.ints.permuteInt64(x)
	return schema.Value{Text: strconv.AppendInt(make([]byte, 0, 20), y, 10)}, nil
}

type hashNumeric struct {
	keys             *Keys
	precision, scale int
	// numeric(p,s) with p <= 18: the permutations of the non-negative
	// and of the negative unscaled values.
	pos, neg prp
}

func (h hashNumeric) Transform(v schema.Value) (schema.Value, error) {
	d, err := parseDecimal(v.Text)
	if err != nil {
		return schema.Value{}, err
	}
	if d.nan || d.inf {
		return v, nil // carries no information
	}
	if h.precision > 0 {
		return h.constrained(d)
	}
	d = d.normalize()
	u, small := d.unscaled()
	if d.scale == 0 && small {
		// Integral and fits a bigint (18 digits or fewer): hash as integer
		// columns do, so numeric and integer keys join.
		x := int64(u)
		if d.neg {
			x = -x
		}
		return schema.Value{Text: strconv.AppendInt(nil, h.keys.ints.permuteInt64(x), 10)}, nil
	}
	n := len(d.digits)
	if small {
		// Same digit count and scale; a fractional value keeps a non-zero
		// last digit so that outputs stay distinct as numbers.
		lo := uint64(0)
		if n > 1 {
			lo = pow10[n-1]
		}
		p := newPRP(h.keys.perm, tweakDecimal|uint64(n)<<8|uint64(d.scale)<<16, pow10[n]-lo)
		y := u - lo
		for {
			y = p.permute(y)
			if d.scale == 0 || (y+lo)%10 != 0 {
				break
			}
		}
		return schema.Value{Text: appendScaled(nil, d.neg, y+lo, d.scale)}, nil
	}
	return schema.Value{Text: h.wide(d, n, d.scale)}, nil
}

// constrained permutes the unscaled values of numeric(p,s), keeping the sign.
func (h hashNumeric) constrained(d decimal) (schema.Value, error) {
	if d.intDigits() > h.precision-h.scale {
		return schema.Value{}, invalid("numeric value does not fit the column's precision")
	}
	// Bring the value to the column's scale (PostgreSQL sends exactly s).
	for d.scale < h.scale {
		d.digits = append(d.digits, '0')
		d.scale++
	}
	if d.scale > h.scale {
		// Cut toward zero; a value smaller than the scale's unit (1.5e-7
		// in numeric(12,2)) has no digit left: zero.
		d.digits = d.digits[:max(0, len(d.digits)-(d.scale-h.scale))]
		d.scale = h.scale
		if d.isZero() {
			d.neg = false
		}
	}
	if h.precision > 18 {
		return schema.Value{Text: h.wide(d, h.precision, h.scale)}, nil
	}
	// Non-negative values permute [0, 10^p); negative ones permute
	// [1, 10^p) among themselves, so a value keeps its sign and never
	// meets the image of its opposite.
	u, _ := d.unscaled()
	if d.neg {
		y := 1 + h.neg.permute(u-1)
		return schema.Value{Text: appendScaled(nil, true, y, h.scale)}, nil
	}
	y := h.pos.permute(u)
	return schema.Value{Text: appendScaled(nil, false, y, h.scale)}, nil
}

// wide hashes numbers of more than 18 digits into n digits with the given
// scale; the space is large enough (10^18 and more) that collisions do not
// happen in practice.
func (h hashNumeric) wide(d decimal, n, scale int) []byte {
	var buf [64]byte
	in := append(buf[:0], "numeric:"...)
	if d.neg {
		in = append(in, '-')
	}
	in = appendScaledDigits(in, false, d.digits, d.scale)
	sum := h.keys.hash.sum(in)
	x := new(big.Int).SetBytes(sum[:])
	x.Mod(x, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil))
	if d.neg {
		x.Neg(x)
	}
	return appendBigScaled(nil, x, scale)
}

type hashUUID struct{ keys *Keys }

func (h hashUUID) Transform(v schema.Value) (schema.Value, error) {
	var u [16]byte
	if !parseUUID(v.Text, &u) {
		return schema.Value{}, invalid("not a valid uuid")
	}
	hi, lo := h.keys.uuids.permute(binary.BigEndian.Uint64(u[:8]), binary.BigEndian.Uint64(u[8:]))
	binary.BigEndian.PutUint64(u[:8], hi)
	binary.BigEndian.PutUint64(u[8:], lo)
	return schema.Value{Text: appendUUID(make([]byte, 0, 36), u)}, nil
}

// parseUUID accepts the forms PostgreSQL's uuid input accepts most often:
// canonical with hyphens, without hyphens, and in braces; any case.
func parseUUID(b []byte, u *[16]byte) bool {
	if len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}' {
		b = b[1 : len(b)-1]
	}
	n := 0
	for i := 0; i < len(b); i++ {
		if b[i] == '-' {
			if i == 0 || i == len(b)-1 || b[i-1] == '-' {
				return false
			}
			continue
		}
		if n == 32 || i+1 >= len(b) {
			return false
		}
		hi, ok1 := fromHex(b[i])
		lo, ok2 := fromHex(b[i+1])
		if !ok1 || !ok2 {
			return false
		}
		u[n/2] = hi<<4 | lo
		n += 2
		i++
	}
	return n == 32
}

func fromHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func appendUUID(dst []byte, u [16]byte) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return append(dst, buf[:]...)
}

type hashText struct {
	keys        *Keys
	length      int
	blankPadded bool
}

// hashTextLen is the length of a text hash: 32 hex digits, 128 bits.
const hashTextLen = 32

func (h hashText) Transform(v schema.Value) (schema.Value, error) {
	in := v.Text
	if h.blankPadded {
		for len(in) > 0 && in[len(in)-1] == ' ' {
			in = in[:len(in)-1]
		}
	}
	sum := h.keys.hash.sum(in)
	n := hashTextLen
	if h.length > 0 && h.length < n {
		n = h.length
	}
	out := make([]byte, hashTextLen)
	hex.Encode(out, sum[:hashTextLen/2])
	return schema.Value{Text: out[:n]}, nil
}

type hashBytea struct{ keys *Keys }

func (h hashBytea) Transform(v schema.Value) (schema.Value, error) {
	raw, err := decodeBytea(v.Text)
	if err != nil {
		return schema.Value{}, err
	}
	sum := h.keys.hash.sum(raw)
	out := make([]byte, 2+2*len(sum))
	out[0], out[1] = '\\', 'x'
	hex.Encode(out[2:], sum[:])
	return schema.Value{Text: out}, nil
}

// decodeBytea decodes bytea's hex output format (\x0a1b...).
func decodeBytea(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != '\\' || b[1] != 'x' || len(b)%2 != 0 {
		return nil, invalid("not bytea in hex format (set bytea_output = hex)")
	}
	out := make([]byte, (len(b)-2)/2)
	if _, err := hex.Decode(out, b[2:]); err != nil {
		return nil, invalid("not bytea in hex format")
	}
	return out, nil
}
