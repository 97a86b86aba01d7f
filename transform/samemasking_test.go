package transform

import "testing"

func TestSameMasking(t *testing.T) {
	jsonRule := func(line int, ratio float64) Rule {
		return Rule{Name: "json", Line: line, Args: Args{"paths": []PathRule{
			{Path: "$.total", Line: line + 1, Rule: Rule{Name: "noise", Line: line + 1, Args: Args{"ratio": ratio}}},
			{Path: "$.email", Line: line + 2, Rule: Rule{Name: "fake", Line: line + 2, Args: Args{"kind": "email"}}},
		}}}
	}
	for _, c := range []struct {
		name string
		a, b Rule
		want bool
	}{
		{"same scalar, other lines", Rule{Name: "hash", Line: 3}, Rule{Name: "hash", Line: 40, Col: 7}, true},
		{"other transformer", Rule{Name: "hash"}, Rule{Name: "keep"}, false},
		{"same parameters", Rule{Name: "truncate", Args: Args{"unit": "day"}}, Rule{Name: "truncate", Line: 9, Args: Args{"unit": "day"}}, true},
		{"other parameters", Rule{Name: "truncate", Args: Args{"unit": "day"}}, Rule{Name: "truncate", Args: Args{"unit": "month"}}, false},
		{"on_error changes no masked value", Rule{Name: "hash"}, Rule{Name: "hash", OnError: "null"}, true},
		{"nested path rules at other lines", jsonRule(10, 0.05), jsonRule(50, 0.05), true},
		{"nested path rules with other parameters", jsonRule(10, 0.05), jsonRule(10, 0.2), false},
	} {
		if got := SameMasking(c.a, c.b); got != c.want {
			t.Errorf("%s: SameMasking = %v, want %v", c.name, got, c.want)
		}
	}
}
