package rules

import (
	"errors"
	"fmt"
	"strings"
)

// maxIdentLen is PostgreSQL's NAMEDATALEN-1: longer names are truncated.
const maxIdentLen = 63

// parseName splits a SQL name into its parts: unquoted parts are folded
// to lower case (ASCII only, as PostgreSQL does with UTF-8), double-quoted
// parts keep their case and may hold dots and "" for a quote.
func parseName(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New("empty name")
	}
	var parts []string
	for i := 0; ; {
		var part string
		if s[i] == '"' {
			var b strings.Builder
			j := i + 1
			for {
				k := strings.IndexByte(s[j:], '"')
				if k < 0 {
					return nil, errors.New("unbalanced double quote")
				}
				b.WriteString(s[j : j+k])
				j += k + 1
				if j < len(s) && s[j] == '"' {
					b.WriteByte('"')
					j++
					continue
				}
				break
			}
			part = b.String()
			if part == "" {
				return nil, errors.New(`empty quoted name ""`)
			}
			if j < len(s) && s[j] != '.' {
				return nil, errors.New("a quoted name must be followed by a dot or end the name")
			}
			i = j
		} else {
			j := i
			for j < len(s) && s[j] != '.' {
				j++
			}
			raw := s[i:j]
			if raw == "" {
				return nil, errors.New("empty name part")
			}
			if err := checkUnquoted(raw); err != nil {
				return nil, err
			}
			part = foldASCII(raw)
			i = j
		}
		if len(part) > maxIdentLen {
			return nil, fmt.Errorf("name part longer than %d bytes (PostgreSQL would truncate it)", maxIdentLen)
		}
		parts = append(parts, part)
		if i == len(s) {
			return parts, nil
		}
		i++ // the dot
		if i == len(s) {
			return nil, errors.New("empty name part")
		}
	}
}

// checkUnquoted checks an unquoted name part the way PostgreSQL's lexer
// reads identifiers: a letter, _ or non-ASCII byte, then also digits and $.
func checkUnquoted(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
		case i > 0 && (c >= '0' && c <= '9' || c == '$'):
		case c == '"':
			return errors.New(`a double quote may only start a name part ("Name")`)
		default:
			return errors.New(`an unquoted name holds only letters, digits, _ and $ and does not start with a digit; quote other names, as in '"Order Items"'`)
		}
	}
	return nil
}

func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// parseTableName resolves "table" (in schema public) or "schema.table".
func parseTableName(s string) (schema, name string, err error) {
	parts, err := parseName(s)
	if err != nil {
		return "", "", fmt.Errorf("malformed table name %q: %w", s, err)
	}
	switch len(parts) {
	case 1:
		return "public", parts[0], nil
	case 2:
		return parts[0], parts[1], nil
	}
	return "", "", fmt.Errorf("malformed table name %q: write table or schema.table", s)
}

// parseColumnName resolves a column name, which has one part.
func parseColumnName(s string) (string, error) {
	parts, err := parseName(s)
	if err != nil {
		return "", fmt.Errorf("malformed column name %q: %w", s, err)
	}
	if len(parts) != 1 {
		return "", fmt.Errorf("malformed column name %q: a column name has no dot (quote it if the name holds one)", s)
	}
	return parts[0], nil
}
