package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"pgveil/replicate"
	"pgveil/rules"
	"pgveil/schema"
)

// previewWidth is the most characters preview shows of a value.
const previewWidth = 40

func runPreview(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "preview")
	file := configFlag(fs)
	n := fs.Int("n", 5, "how many rows to show")
	pos, code := parseInterleaved(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		if len(pos) == 0 {
			fmt.Fprintln(e.stderr, "pgveil preview: give the table to show, as name or schema.name")
		} else {
			fmt.Fprintf(e.stderr, "pgveil preview: unexpected argument %s\n", shownArg(pos[1]))
		}
		fs.Usage()
		return exitUsage
	}
	if *n < 1 {
		fmt.Fprintln(e.stderr, "pgveil preview: -n must be at least 1")
		return exitUsage
	}
	cfg, reg, code := loadRules(e, *file)
	if code >= 0 {
		return code
	}
	tr, err := findTableRule(cfg, pos[0])
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil preview: %v\n", err)
		return exitProblems
	}
	src, err := openSource(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil preview: %v\n", err)
		return exitProblems
	}
	defer src.Close(context.Background())
	name := schema.TableName{Schema: tr.Schema, Name: tr.Name}
	label := schema.TableName{Schema: tr.Schema, Name: tr.Name}.QualifiedName()
	cat, err := schema.ReadCatalog(ctx, src, []schema.TableName{name})
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil preview: %v\n", err)
		return exitProblems
	}
	if cat.Tables[name] == nil {
		fmt.Fprintf(e.stderr, "pgveil preview: table %s is in the rules but not in the source\n", label)
		return exitProblems
	}
	// Only this table's rules: another table's problem does not stop a
	// preview of this one.
	one := *cfg
	one.Tables = []*rules.TableRule{tr}
	prep, err := replicate.PrepareRunning(ctx, src, &one, reg)
	if err != nil {
		printPrepareError(e, "preview", cfg, err, nil)
		return exitProblems
	}
	tp := prep.Plan.Table(tr.Schema, tr.Name)
	if tp == nil {
		fmt.Fprintf(e.stderr, "pgveil preview: table %s is not in the source\n", label)
		return exitProblems
	}
	query := replicate.SelectSQL(tp, "", tp.Where) + fmt.Sprintf(" LIMIT %d", *n)
	rows, err := replicate.QueryText(ctx, src.PgConn(), query, nil)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil preview: reading %s: %v\n", label, err)
		return exitProblems
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tp.ColumnNames(), "\t"))
	var masked []schema.Value
	cells := make([]string, len(tp.Columns))
	for i, row := range rows {
		masked, err = tp.Mask(masked[:0], row)
		if err != nil {
			tw.Flush()
			// MaskError names the table and column, never the value.
			fmt.Fprintf(e.stderr, "pgveil preview: row %d: %v\n", i+1, err)
			return exitProblems
		}
		for j, v := range masked {
			cells[j] = previewCell(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
	if len(tp.Dropped) > 0 {
		fmt.Fprintf(e.stdout, "\ndropped: %s\n", strings.Join(tp.Dropped, ", "))
	}
	fmt.Fprintf(e.stderr, "%d row%s of %s, masked; nothing was written\n", len(rows), plural(len(rows)), label)
	return exitOK
}

// previewCell is a masked value as preview shows it: NULL, control characters
// escaped, cut to previewWidth characters.
func previewCell(v schema.Value) string {
	if v.State == schema.Null {
		return "NULL"
	}
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(v.Text), "?"))
	if utf8.RuneCountInString(s) > previewWidth {
		r := []rune(s)
		s = string(r[:previewWidth-1]) + "…"
	}
	if s == "" {
		return `""`
	}
	return s
}

// parseInterleaved parses flags given before, between and after the
// positional arguments (flag stops at the first argument), and returns
// the positional ones, or an exit code >= 0.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, int) {
	var pos []string
	for {
		if code := parseFlags(fs, args); code >= 0 {
			return nil, code
		}
		if fs.NArg() == 0 {
			return pos, -1
		}
		rest := fs.Args()
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			return append(pos, rest...), -1 // "--" ends the flags
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// findTableRule finds the rules of a table written as name (any schema,
// public first), schema.name, or with quoted parts ("Sales"."Orders").
func findTableRule(cfg *rules.Config, arg string) (*rules.TableRule, error) {
	parts, err := splitName(arg)
	if err != nil || len(parts) > 2 {
		return nil, fmt.Errorf("table %q: write name or schema.name", arg)
	}
	var found []*rules.TableRule
	for _, t := range cfg.Tables {
		if t == nil {
			continue
		}
		if len(parts) == 2 && t.Schema == parts[0] && t.Name == parts[1] || len(parts) == 1 && t.Name == parts[0] {
			found = append(found, t)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		for _, t := range found {
			if t.Schema == "public" {
				return t, nil
			}
		}
		return nil, fmt.Errorf("table %s is in several schemas of the rules: write schema.name", arg)
	}
	return nil, fmt.Errorf("table %s is not in the rules (%s)", arg, cfg.File)
}

// splitName splits a dotted SQL name; unquoted parts fold to lower case
// (ASCII, as PostgreSQL does), quoted ones keep theirs.
func splitName(s string) ([]string, error) {
	var parts []string
	for {
		var part strings.Builder
		if strings.HasPrefix(s, `"`) {
			s = s[1:]
			for {
				i := strings.IndexByte(s, '"')
				if i < 0 {
					return nil, errors.New("unterminated quote")
				}
				part.WriteString(s[:i])
				s = s[i+1:]
				if !strings.HasPrefix(s, `"`) {
					break
				}
				part.WriteByte('"')
				s = s[1:]
			}
		} else {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				i = len(s)
			}
			for _, r := range s[:i] {
				if r >= 'A' && r <= 'Z' {
					r += 'a' - 'A'
				}
				part.WriteRune(r)
			}
			s = s[i:]
		}
		if part.Len() == 0 {
			return nil, errors.New("empty name")
		}
		parts = append(parts, part.String())
		if s == "" {
			return parts, nil
		}
		if s[0] != '.' {
			return nil, errors.New("malformed name")
		}
		s = s[1:]
	}
}
