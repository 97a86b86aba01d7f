package transform

import "pgveil/schema"

// arrayTransformer applies a per-element transformer to every element of a
// PostgreSQL array in text form ("{a,\"b c\",NULL}", "{{1,2},{3,4}}",
// "[0:1]={x,y}"), keeping its shape; NULL elements stay NULL.
type arrayTransformer struct {
	elem Transformer
}

func (a arrayTransformer) Transform(v schema.Value) (schema.Value, error) {
	out, err := mapArray(v.Text, func(e schema.Value) (schema.Value, error) {
		if e.State == schema.Null {
			return e, nil
		}
		return a.elem.Transform(e)
	})
	if err != nil {
		return schema.Value{}, err
	}
	return schema.Value{Text: out}, nil
}

var errArray = invalid("malformed array literal")

// mapArray rewrites each element of an array literal with f.
func mapArray(s []byte, f func(schema.Value) (schema.Value, error)) ([]byte, error) {
	out := make([]byte, 0, len(s)+len(s)/4)
	i := 0
	// Optional dimension decoration: [lo:hi][lo:hi]=
	if i < len(s) && s[i] == '[' {
		for i < len(s) && s[i] != '=' {
			i++
		}
		if i == len(s) {
			return nil, errArray
		}
		i++
		out = append(out, s[:i]...)
	}
	depth := 0
	expectElem := false // after '{' or ','
	afterComma := false
	var elem []byte
	for i < len(s) {
		c := s[i]
		switch {
		case c == '{':
			if depth > 0 && !expectElem {
				return nil, errArray
			}
			depth++
			out = append(out, c)
			expectElem, afterComma = true, false
			i++
		case c == '}':
			if depth == 0 || afterComma {
				return nil, errArray
			}
			depth--
			out = append(out, c)
			expectElem = false
			i++
			if depth == 0 {
				for ; i < len(s); i++ {
					if !isArraySpace(s[i]) {
						return nil, errArray
					}
				}
				return out, nil
			}
		case c == ',':
			if depth == 0 || expectElem {
				return nil, errArray
			}
			out = append(out, c)
			expectElem, afterComma = true, true
			i++
		case isArraySpace(c):
			i++
		default:
			if depth == 0 || !expectElem {
				return nil, errArray
			}
			var quoted bool
			var err error
			elem, i, quoted, err = scanArrayElem(s, i, elem[:0])
			if err != nil {
				return nil, err
			}
			in := schema.Value{Text: elem}
			if !quoted && isNullWord(elem) {
				in = schema.Value{State: schema.Null}
			}
			res, err := f(in)
			if err != nil {
				return nil, err
			}
			out = appendArrayElem(out, res)
			expectElem, afterComma = false, false
		}
	}
	return nil, errArray
}

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isNullWord(b []byte) bool {
	return len(b) == 4 && (b[0]|0x20) == 'n' && (b[1]|0x20) == 'u' && (b[2]|0x20) == 'l' && (b[3]|0x20) == 'l'
}

// scanArrayElem reads one element starting at s[i] into buf, unescaping it.
func scanArrayElem(s []byte, i int, buf []byte) ([]byte, int, bool, error) {
	if s[i] == '"' {
		i++
		for i < len(s) {
			switch c := s[i]; c {
			case '\\':
				if i+1 >= len(s) {
					return nil, 0, false, errArray
				}
				buf = append(buf, s[i+1])
				i += 2
			case '"':
				return buf, i + 1, true, nil
			default:
				buf = append(buf, c)
				i++
			}
		}
		return nil, 0, false, errArray
	}
	// Unquoted: up to a delimiter; trailing whitespace is not part of it.
	end := i
	for i < len(s) {
		c := s[i]
		if c == ',' || c == '}' {
			break
		}
		if c == '{' || c == '"' {
			return nil, 0, false, errArray
		}
		if c == '\\' {
			if i+1 >= len(s) {
				return nil, 0, false, errArray
			}
			buf = append(buf, s[i+1])
			i += 2
			end = len(buf)
			continue
		}
		buf = append(buf, c)
		i++
		if !isArraySpace(c) {
			end = len(buf)
		}
	}
	return buf[:end], i, false, nil
}

// appendArrayElem writes one element, quoting it when PostgreSQL would.
func appendArrayElem(out []byte, v schema.Value) []byte {
	if v.State == schema.Null {
		return append(out, "NULL"...)
	}
	t := v.Text
	quote := len(t) == 0 || isNullWord(t)
	for _, c := range t {
		if c == '"' || c == '\\' || c == '{' || c == '}' || c == ',' || isArraySpace(c) {
			quote = true
			break
		}
	}
	if !quote {
		return append(out, t...)
	}
	out = append(out, '"')
	for _, c := range t {
		if c == '"' || c == '\\' {
			out = append(out, '\\')
		}
		out = append(out, c)
	}
	return append(out, '"')
}
