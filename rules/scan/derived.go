package scan

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/schema"
)

// Derived is a column computed from other columns of its table: it
// carries their words or values, so it must be masked at least as
// strictly as they are.
type Derived struct {
	Column refs.Column
	// Inputs are the columns of the same table it is computed from.
	Inputs []string
	// How says how the derivation was seen: "generated column",
	// "tsvector trigger", "trigger function f".
	How string
}

// DerivedColumns reads from the catalog the columns computed from others:
// generated columns (their expression's columns, from pg_depend), tsvector
// columns maintained by tsvector_update_trigger (its arguments), and
// columns a trigger function assigns (NEW.col := ...), whose inputs are
// the other NEW columns the function reads. Partitions are left out: they
// are replicated as their root. A function that builds its value through
// other functions is seen only as far as its own source shows.
func DerivedColumns(ctx context.Context, conn *pgx.Conn) ([]Derived, error) {
	var out []Derived
	rows, err := conn.Query(ctx, `
SELECT n.nspname::text, c.relname::text, a.attname::text,
       array_agg(ia.attname::text ORDER BY ia.attnum)
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
  AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = a.attrelid AND d.refobjsubid > 0 AND d.refobjsubid <> a.attnum
JOIN pg_catalog.pg_attribute ia ON ia.attrelid = a.attrelid AND ia.attnum = d.refobjsubid AND NOT ia.attisdropped
WHERE a.attgenerated <> '' AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("reading generated columns: %w", err)
	}
	for rows.Next() {
		d := Derived{How: "generated column"}
		if err := rows.Scan(&d.Column.Table.Schema, &d.Column.Table.Name, &d.Column.Name, &d.Inputs); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading generated columns: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading generated columns: %w", err)
	}
	rows, err = conn.Query(ctx, `
SELECT n.nspname::text, c.relname::text, p.proname::text, pn.nspname::text, l.lanname::text,
       CASE WHEN l.lanname IN ('plpgsql', 'sql') THEN p.prosrc ELSE '' END, t.tgargs,
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE NOT t.tgisinternal AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, t.tgname`)
	if err != nil {
		return nil, fmt.Errorf("reading triggers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var schemaName, table, fn, fnSchema, lang, src string
		var args []byte
		var columns []string
		if err := rows.Scan(&schemaName, &table, &fn, &fnSchema, &lang, &src, &args, &columns); err != nil {
			return nil, fmt.Errorf("reading triggers: %w", err)
		}
		tn := schema.TableName{Schema: schemaName, Name: table}
		for _, d := range triggerDerived(fn, fnSchema, src, args, columns) {
			d.Column.Table = tn
			out = mergeDerived(out, d)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading triggers: %w", err)
	}
	return out, nil
}

// mergeDerived adds d, or its inputs to the entry of the same column.
func mergeDerived(out []Derived, d Derived) []Derived {
	for i := range out {
		if out[i].Column == d.Column {
			for _, in := range d.Inputs {
				if !slices.Contains(out[i].Inputs, in) {
					out[i].Inputs = append(out[i].Inputs, in)
				}
			}
			return out
		}
	}
	return append(out, d)
}

var (
	// reAssign is an assignment to a column of NEW at the start of a
	// statement: "NEW.fulltext := ...", "new."Search" = ...".
	reAssign = regexp.MustCompile(`(?im)(?:^|;|\bthen|\belse|\bbegin|\bloop)\s*new\s*\.\s*("[^"]+"|[a-z_][a-z0-9_$]*)\s*:?=`)
	// reNewCol is any mention of a column of NEW.
	reNewCol = regexp.MustCompile(`(?i)\bnew\s*\.\s*("[^"]+"|[a-z_][a-z0-9_$]*)`)
)

// identOf unquotes a quoted identifier or folds an unquoted one.
func identOf(s string) string {
	if strings.HasPrefix(s, `"`) {
		return strings.ReplaceAll(strings.Trim(s, `"`), `""`, `"`)
	}
	return strings.ToLower(s)
}

// triggerDerived reads what one trigger computes: the columns it assigns
// and the columns it reads, among the table's columns.
func triggerDerived(fn, fnSchema, src string, args []byte, columns []string) []Derived {
	has := func(c string) bool { return slices.Contains(columns, c) }
	if fnSchema == "pg_catalog" && (fn == "tsvector_update_trigger" || fn == "tsvector_update_trigger_column") {
		// Arguments: the tsvector column, the configuration (a name, or
		// for _column a column holding it), then the source columns.
		parts := strings.Split(strings.TrimSuffix(string(args), "\x00"), "\x00")
		if len(parts) < 3 || !has(parts[0]) {
			return nil
		}
		d := Derived{Column: refs.Column{Name: parts[0]}, How: "tsvector trigger"}
		for _, in := range parts[2:] {
			if has(in) {
				d.Inputs = append(d.Inputs, in)
			}
		}
		return []Derived{d}
	}
	if src == "" {
		return nil
	}
	var targets, reads []string
	for _, m := range reAssign.FindAllStringSubmatch(src, -1) {
		if c := identOf(m[1]); has(c) && !slices.Contains(targets, c) {
			targets = append(targets, c)
		}
	}
	for _, m := range reNewCol.FindAllStringSubmatch(src, -1) {
		if c := identOf(m[1]); has(c) && !slices.Contains(reads, c) {
			reads = append(reads, c)
		}
	}
	var out []Derived
	for _, t := range targets {
		d := Derived{Column: refs.Column{Name: t}, How: "trigger function " + schema.QuoteIdent(fn)}
		for _, r := range reads {
			if !slices.Contains(targets, r) {
				d.Inputs = append(d.Inputs, r)
			}
		}
		if len(d.Inputs) > 0 {
			out = append(out, d)
		}
	}
	return out
}

// CheckDerived warns of each derived column the rules keep while a column
// it is built from is masked: the replica would show, in the derived
// column, what the rules mask in the other (a tsvector keeps the words of
// a dropped title). Columns or tables the rules do not name are left to
// Compile.
func CheckDerived(cfg *rules.Config, derived []Derived) []rules.Problem {
	var out []rules.Problem
	for _, d := range derived {
		var tr *rules.TableRule
		for _, t := range cfg.Tables {
			if t != nil && t.Schema == d.Column.Table.Schema && t.Name == d.Column.Table.Name {
				tr = t
				break
			}
		}
		if tr == nil {
			continue
		}
		rule := func(name string) *rules.ColumnRule {
			for _, c := range tr.Columns {
				if c != nil && c.Name == name {
					return c
				}
			}
			return nil
		}
		dc := rule(d.Column.Name)
		if dc == nil || dc.Rule.Name != "keep" {
			continue
		}
		var masked []string
		for _, in := range d.Inputs {
			if ic := rule(in); ic != nil && ic.Rule.Name != "keep" {
				masked = append(masked, fmt.Sprintf("%s (%s, line %d)", schema.QuoteIdent(in), ic.Rule.Name, ic.Line))
			}
		}
		if len(masked) == 0 {
			continue
		}
		out = append(out, rules.Problem{File: cfg.File, Line: dc.Rule.Line, Col: dc.Rule.Col,
			Table: d.Column.Table.QualifiedName(), Column: schema.QuoteIdent(d.Column.Name), Warning: true,
			Msg: "kept, but it is a " + d.How + " built from " + strings.Join(masked, ", ") +
				": the replica would show in it what the rules mask there; drop it (or mask it at least as strictly)"})
	}
	return out
}
