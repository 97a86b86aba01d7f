package rules

import (
	"reflect"
	"testing"
)

func TestExpand(t *testing.T) {
	env := mapEnv(map[string]string{"A": "alpha", "EMPTY": "", "D": "$HOME ${X}"})
	tests := []struct {
		in, want string
		used     bool
		problems []string
	}{
		{"plain", "plain", false, nil},
		{"${A}", "alpha", true, nil},
		{"x${A}y${A}", "xalphayalpha", true, nil},
		{"${A:-d}", "alpha", true, nil},
		{"${NOPE:-d}", "d", true, nil},
		{"${EMPTY:-d}", "d", true, nil},
		{"${EMPTY}", "", true, nil},
		{"${NOPE:-}", "", true, nil},
		{"${NOPE:-a:-b}", "a:-b", true, nil},
		{"${D}", "$HOME ${X}", true, nil}, // values are not expanded again
		{"$$", "$", false, nil},
		{"$${A}", "${A}", false, nil},
		{"$$$", "$$", false, nil},
		{"a$b", "a$b", false, nil},
		{"$", "$", false, nil},
		{"cost $5", "cost $5", false, nil},
		{"${NOPE}", "", true, []string{"environment variable NOPE is not set"}},
		{"${NOPE} ${NOPE2}", " ", true, []string{"environment variable NOPE is not set", "environment variable NOPE2 is not set"}},
		{"${}", "", true, []string{"malformed ${...}: write ${NAME} or ${NAME:-default}, where NAME is letters, digits and _ (write $$ for a literal $)"}},
		{"${1A}", "", true, []string{"malformed ${...}: write ${NAME} or ${NAME:-default}, where NAME is letters, digits and _ (write $$ for a literal $)"}},
		{"${A-b}", "", true, []string{"malformed ${...}: write ${NAME} or ${NAME:-default}, where NAME is letters, digits and _ (write $$ for a literal $)"}},
		{"x${A", "x", false, []string{"unterminated ${ (write $$ for a literal $)"}},
	}
	for _, tt := range tests {
		got, used, problems := expand(tt.in, env)
		if len(tt.problems) == 0 && (got != tt.want || used != tt.used) || !reflect.DeepEqual(problems, tt.problems) {
			t.Errorf("expand(%q) = %q, %v, %q; want %q, %v, %q", tt.in, got, used, problems, tt.want, tt.used, tt.problems)
		}
	}
}
