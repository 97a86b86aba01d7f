package transform

import (
	"errors"
	"fmt"
	"pgveil/schema"
	"unicode/utf8"
)

// partial keeps the first and/or last characters of a text and replaces
// the others with a mask character, keeping the length: "+33612345678"
// with keep_last 2 becomes "**********78". A value no longer than what
// would be kept is masked entirely, so short values are never revealed.
type partial struct {
	first, last int
	mask        []byte
	blankPadded bool
}

func partialSpec() *Spec {
	return &Spec{
		Name: "partial",
		Doc:  "Keeps the first and/or last characters of text and masks the rest, keeping the length ({partial: {keep_last: 4}}). Values no longer than what would be kept are masked entirely.",
		Params: []Param{
			{Name: "keep_first", Kind: ParamInt, Doc: "Characters kept at the start.", Check: nonNegative},
			{Name: "keep_last", Kind: ParamInt, Doc: "Characters kept at the end.", Check: nonNegative},
			{Name: "mask", Kind: ParamChar, Doc: "The character that replaces the others.", Default: "*"},
		},
		Check: func(a Args) error {
			if a.Int("keep_first", 0)+a.Int("keep_last", 0) == 0 {
				return errors.New("set keep_first or keep_last (to hide everything, use redact)")
			}
			return nil
		},
		New: func(c schema.Column, a Args, _ *Keys, _ *Registry) (Transformer, error) {
			if c.Type.Kind != schema.KindText {
				return nil, fmt.Errorf("partial applies to text columns, not to %s; use %s", c.Type, suggestFor(c.Type))
			}
			return partial{
				first:       int(a.Int("keep_first", 0)),
				last:        int(a.Int("keep_last", 0)),
				mask:        []byte(a.String("mask", "*")),
				blankPadded: c.Type.Name == "character",
			}, nil
		},
	}
}

func (p partial) Transform(v schema.Value) (schema.Value, error) {
	s := v.Text
	if p.blankPadded {
		for len(s) > 0 && s[len(s)-1] == ' ' {
			s = s[:len(s)-1]
		}
	}
	n := utf8.RuneCount(s)
	out := make([]byte, 0, len(s)+n*(len(p.mask)-1))
	if n-p.last <= p.first { // n <= first+last, without overflow on huge keeps
		for range n {
			out = append(out, p.mask...)
		}
		return schema.Value{Text: out}, nil
	}
	i := 0
	for k := 0; k < n; k++ {
		_, size := utf8.DecodeRune(s[i:])
		if k < p.first || k >= n-p.last {
			out = append(out, s[i:i+size]...)
		} else {
			out = append(out, p.mask...)
		}
		i += size
	}
	return schema.Value{Text: out}, nil
}
