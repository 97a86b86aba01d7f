package rules

import (
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong (or, for a warning, suspicious) in a rules
// file. It never holds a value from the environment, the secret or a DSN.
type Problem struct {
	File      string
	Line, Col int    // 0 when unknown (YAML syntax errors have no column)
	Table     string // "public.customers" or ""
	Column    string // "email" or ""
	Msg       string
	Warning   bool // warnings are printed but do not fail validation
	// Kind classifies problems callers act on: KindUnruled, KindMissing,
	// or "".
	Kind string
}

const (
	// KindUnruled marks a column of a listed table that no rule names.
	KindUnruled = "unruled"
	// KindMissing marks a table or column the rules name that the source
	// does not have.
	KindMissing = "missing"
)

// String formats the problem as "FILE:LINE:COL: table.column: message",
// leaving out the parts that are empty or zero.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		if p.File != "" {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(p.Line))
		if p.Col > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Col))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	switch {
	case p.Table != "" && p.Column != "":
		b.WriteString(p.Table + "." + p.Column + ": ")
	case p.Table != "":
		b.WriteString(p.Table + ": ")
	case p.Column != "":
		b.WriteString(p.Column + ": ")
	}
	if p.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a file, sorted by line and column.
// It is the error Load, Parse and Compile return.
type Problems []Problem

// Error returns the problems one per line.
func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Errors returns the problems that are not warnings.
func (ps Problems) Errors() Problems {
	var out Problems
	for _, p := range ps {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// warnings returns the problems that are warnings.
func (ps Problems) warnings() Problems {
	var out Problems
	for _, p := range ps {
		if p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// sorted sorts by position, keeping the order of problems found at the
// same position, and drops exact repeats (a YAML alias used twice reports
// the problems of its anchor twice).
func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Col < ps[j].Col
	})
	seen := make(map[Problem]bool, len(ps))
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
