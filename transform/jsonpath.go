package transform

import (
	"errors"
	"fmt"
	"strconv"
)

// A JSON path selects values in a json or jsonb document. The supported
// syntax is the common subset of JSONPath:
//
//	$              the whole document
//	.key  ["key"]  a member of an object (['key'] works too; in either
//	               quotes, a backslash escapes the quote or a backslash)
//	[N]            the N-th element of an array (from 0)
//	[*]  .*        every element of an array or member of an object
//	..key          the member key at any depth
//	~              (last) the names of the members the path selects,
//	               not their values: $.contacts.*~
type jsonPath []pathSeg

type segKind uint8

const (
	segKey segKind = iota
	segIndex
	segAll
	segDeep // ..key
	segName // ~: the names of the members selected so far (last step only)
)

type pathSeg struct {
	kind  segKind
	key   string
	index int
}

func parseJSONPath(s string) (jsonPath, error) {
	if s == "" || s[0] != '$' {
		return nil, errors.New(`a JSON path starts with $, as in $.address.street`)
	}
	var p jsonPath
	i := 1
	for i < len(s) {
		switch {
		case s[i] == '.' && i+1 < len(s) && s[i+1] == '.':
			i += 2
			key, n := scanPathName(s[i:])
			if n == 0 {
				return nil, fmt.Errorf("JSON path %s: a name must follow .. at offset %d", s, i)
			}
			p = append(p, pathSeg{kind: segDeep, key: key})
			i += n
		case s[i] == '.':
			i++
			if i < len(s) && s[i] == '*' {
				p = append(p, pathSeg{kind: segAll})
				i++
				continue
			}
			key, n := scanPathName(s[i:])
			if n == 0 {
				return nil, fmt.Errorf("JSON path %s: a name must follow . at offset %d", s, i)
			}
			p = append(p, pathSeg{kind: segKey, key: key})
			i += n
		case s[i] == '[':
			end := i + 1
			if end < len(s) && (s[end] == '"' || s[end] == '\'') {
				q := s[end]
				end++
				for end < len(s) && s[end] != q {
					if s[end] == '\\' {
						end++
					}
					end++
				}
				if end+1 >= len(s) || s[end+1] != ']' {
					return nil, fmt.Errorf("JSON path %s: unterminated quoted name at offset %d", s, i)
				}
				key := s[i+2 : end]
				if q == '\'' {
					key = singleToDoubleQuoted(key)
				}
				key, err := strconv.Unquote(`"` + key + `"`)
				if err != nil {
					return nil, fmt.Errorf("JSON path %s: bad quoted name at offset %d", s, i)
				}
				p = append(p, pathSeg{kind: segKey, key: key})
				i = end + 2
				continue
			}
			for end < len(s) && s[end] != ']' {
				end++
			}
			if end == len(s) {
				return nil, fmt.Errorf("JSON path %s: missing ] after offset %d", s, i)
			}
			inner := s[i+1 : end]
			if inner == "*" {
				p = append(p, pathSeg{kind: segAll})
			} else {
				n, err := strconv.Atoi(inner)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("JSON path %s: [%s] is neither [*], an index nor a quoted name", s, inner)
				}
				p = append(p, pathSeg{kind: segIndex, index: n})
			}
			i = end + 1
		case s[i] == '~':
			switch {
			case i != len(s)-1:
				return nil, fmt.Errorf("JSON path %s: ~ ends a path (it selects the names of the members the path selects), at offset %d", s, i)
			case len(p) == 0:
				return nil, fmt.Errorf("JSON path %s: the document has no name; $.*~ selects the names of its members", s)
			case p[len(p)-1].kind == segIndex:
				return nil, fmt.Errorf("JSON path %s: [N] selects an array element, which has no name", s)
			}
			p = append(p, pathSeg{kind: segName})
			i++
		default:
			return nil, fmt.Errorf("JSON path %s: unexpected %q at offset %d", s, s[i], i)
		}
	}
	if len(p) > maxPathSteps {
		return nil, fmt.Errorf("JSON path %s: more than %d steps", s, maxPathSteps)
	}
	return p, nil
}

// scanPathName reads a bare member name: up to the next ., [, ], space,
// *, ~ or quote (a name holding those is written ["..."]).
func scanPathName(s string) (string, int) {
	n := 0
	for n < len(s) {
		c := s[n]
		if c == '.' || c == '[' || c == ']' || c == ' ' || c == '*' || c == '~' || c == '\'' || c == '"' {
			break
		}
		n++
	}
	return s[:n], n
}

// singleToDoubleQuoted rewrites the inside of a single-quoted name as the
// inside of a double-quoted one: \' becomes ' and " becomes \".
func singleToDoubleQuoted(s string) string {
	out := make([]byte, 0, len(s)+2)
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '\'':
			out = append(out, '\'')
			i++
		case s[i] == '\\' && i+1 < len(s):
			out = append(out, s[i], s[i+1])
			i++
		case s[i] == '"':
			out = append(out, '\\', '"')
		default:
			out = append(out, s[i])
		}
	}
	return string(out)
}
