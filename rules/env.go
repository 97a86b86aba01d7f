package rules

import "strings"

// LookupEnv is os.LookupEnv's signature; tests pass a map-backed func.
type LookupEnv func(string) (string, bool)

// expand replaces ${VAR} with VAR's value from env and ${VAR:-default}
// with the default when VAR is unset or empty; $$ stands for $, and a $
// not followed by { is kept. used reports whether any ${...} was
// replaced. problems name variables only, never values.
func expand(s string, env LookupEnv) (out string, used bool, problems []string) {
	if strings.IndexByte(s, '$') < 0 {
		return s, false, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		d := strings.IndexByte(s[i:], '$')
		if d < 0 {
			b.WriteString(s[i:])
			break
		}
		b.WriteString(s[i : i+d])
		i += d
		switch {
		case strings.HasPrefix(s[i:], "$$"):
			b.WriteByte('$')
			i += 2
			continue
		case !strings.HasPrefix(s[i:], "${"):
			b.WriteByte('$')
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			problems = append(problems, "unterminated ${ (write $$ for a literal $)")
			break
		}
		ref := s[i+2 : i+2+end]
		i += 2 + end + 1
		used = true
		name, def, hasDef := strings.Cut(ref, ":-")
		if !isVarName(name) {
			problems = append(problems, "malformed ${...}: write ${NAME} or ${NAME:-default}, where NAME is letters, digits and _ (write $$ for a literal $)")
			continue
		}
		v, ok := env(name)
		switch {
		case hasDef && v == "":
			v = def
		case !ok:
			problems = append(problems, "environment variable "+name+" is not set")
			continue
		}
		b.WriteString(v)
	}
	return b.String(), used, problems
}

func isVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
