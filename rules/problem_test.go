package rules

import (
	"errors"
	"testing"
)

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "r.yaml", Line: 3, Col: 7, Table: "public.customers", Column: "email", Msg: "column not found"},
			"r.yaml:3:7: public.customers.email: column not found"},
		{Problem{File: "r.yaml", Line: 3, Col: 7, Table: "public.customers", Msg: "table not found"},
			"r.yaml:3:7: public.customers: table not found"},
		{Problem{File: "r.yaml", Line: 3, Col: 7, Msg: "secret is required"},
			"r.yaml:3:7: secret is required"},
		{Problem{File: "r.yaml", Line: 3, Col: 7, Table: "public.t", Column: "e", Msg: "may collide", Warning: true},
			"r.yaml:3:7: public.t.e: warning: may collide"},
		{Problem{File: "r.yaml", Line: 3, Msg: "YAML syntax error: x"}, "r.yaml:3: YAML syntax error: x"},
		{Problem{File: "r.yaml", Msg: "m"}, "r.yaml: m"},
		{Problem{Line: 2, Col: 1, Msg: "m"}, "2:1: m"},
		{Problem{Msg: "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestProblems(t *testing.T) {
	ps := Problems{
		{File: "f", Line: 9, Col: 1, Msg: "c"},
		{File: "f", Line: 2, Col: 5, Msg: "b", Warning: true},
		{File: "f", Line: 2, Col: 3, Msg: "a"},
		{File: "f", Line: 9, Col: 1, Msg: "c"},
		{File: "f", Line: 9, Col: 1, Msg: "d"},
	}.sorted()
	if got, want := ps.Error(), "f:2:3: a\nf:2:5: warning: b\nf:9:1: c\nf:9:1: d"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if errs := ps.Errors(); len(errs) != 3 || errs[1].Msg != "c" {
		t.Errorf("Errors() = %v", errs)
	}
	if w := ps.warnings(); len(w) != 1 || w[0].Msg != "b" {
		t.Errorf("warnings() = %v", w)
	}
	var err error = ps
	var got Problems
	if !errors.As(err, &got) || len(got) != 4 {
		t.Errorf("errors.As = %v", got)
	}
	if (Problems{}).Error() != "" {
		t.Errorf("empty Problems has a message")
	}
}
