package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
	"pgveil/transform"
)

// View is one of production's views or materialized views, as the replica
// may get it: its definition and what it reads.
type View struct {
	Name         schema.TableName
	Materialized bool
	// Definition is pg_get_viewdef's text, read with an empty search_path:
	// every relation outside pg_catalog is schema-qualified, so the text
	// means the same on the replica. No trailing semicolon.
	Definition string
	// SecurityBarrier: production's view has security_barrier set.
	SecurityBarrier bool
	// Reads is every object the view's query depends on (pg_depend of its
	// rewrite rule), in a stable order.
	Reads []ViewRead
	// Volatile are the volatile functions its query calls, built-ins
	// included (PostgreSQL records no dependency on those: they are read
	// from the rewrite rule's query tree), as regprocedure text.
	Volatile []string
}

// ViewRead is one object a view's query depends on.
type ViewRead struct {
	// Relation is set for a relation (table, view, sequence...).
	Relation schema.TableName
	// RelKind is the relation's pg_class.relkind ('r', 'p', 'v', 'm', ...).
	RelKind string
	// Column is the column read; "" when the dependency is on the relation
	// as a whole (count(*), a whole-row reference).
	Column string
	// Object describes anything else (pg_describe_object): a function, a
	// type, an operator. Function is set for pg_proc.
	Object   string
	Function bool
	Type     bool
}

// Hash identifies a view's definition: a change of it in production
// makes the replica's copy be created again.
func (v *View) Hash() string {
	kind := "view"
	if v.Materialized {
		kind = "materialized"
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%t\x00%s", kind, v.SecurityBarrier, v.Definition)))
	return hex.EncodeToString(sum[:12])
}

// ReadViews reads the views and materialized views of production's
// schemas (those of the replicated tables), with their definitions and
// dependencies, in one read-only transaction. It reads names and SQL
// text only, never a row.
func ReadViews(ctx context.Context, conn *pgx.Conn, schemas []string) ([]*View, error) {
	var out []*View
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// pg_catalog stays searched (implicitly, first): built-ins print
		// unqualified, everything else schema-qualified.
		if _, err := tx.Exec(ctx, `SET LOCAL search_path = ''`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT c.oid, n.nspname::text, c.relname::text, c.relkind = 'm', pg_catalog.pg_get_viewdef(c.oid, true),
	coalesce(c.reloptions @> ARRAY['security_barrier=true'] OR c.reloptions @> ARRAY['security_barrier=on'], false)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname = ANY($1::text[])
ORDER BY 2, 3`, schemas)
		if err != nil {
			return err
		}
		byOID := map[uint32]*View{}
		var oids []uint32
		var oid uint32
		var v View
		_, err = pgx.ForEachRow(rows, []any{&oid, &v.Name.Schema, &v.Name.Name, &v.Materialized, &v.Definition, &v.SecurityBarrier}, func() error {
			nv := v
			nv.Definition = strings.TrimRight(strings.TrimSpace(nv.Definition), ";")
			byOID[oid] = &nv
			oids = append(oids, oid)
			out = append(out, &nv)
			return nil
		})
		if err != nil || len(oids) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT DISTINCT w.ev_class, coalesce(rn.nspname::text, ''), coalesce(r.relname::text, ''), coalesce(r.relkind::text, ''),
	coalesce(a.attname::text, ''),
	CASE WHEN d.refclassid <> 'pg_catalog.pg_class'::pg_catalog.regclass THEN pg_catalog.pg_describe_object(d.refclassid, d.refobjid, 0) ELSE '' END,
	d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass, d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass
FROM pg_catalog.pg_rewrite w
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = w.oid
LEFT JOIN pg_catalog.pg_class r ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND r.oid = d.refobjid
LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum = d.refobjsubid AND d.refobjsubid > 0
WHERE w.ev_class = ANY($1::oid[]) AND NOT (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = w.ev_class)
ORDER BY 1, 2, 3, 5, 6`, oids)
		if err != nil {
			return err
		}
		var r ViewRead
		_, err = pgx.ForEachRow(rows, []any{&oid, &r.Relation.Schema, &r.Relation.Name, &r.RelKind, &r.Column, &r.Object, &r.Function, &r.Type}, func() error {
			if v := byOID[oid]; v != nil {
				v.Reads = append(v.Reads, r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, volatileCallsSQL, oids)
		if err != nil {
			return err
		}
		var fn string
		_, err = pgx.ForEachRow(rows, []any{&oid, &fn}, func() error {
			if v := byOID[oid]; v != nil {
				v.Volatile = append(v.Volatile, fn)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, schema.WrapSQL(err, "reading production's views")
	}
	return out, nil
}

// volatileCallsSQL lists, per view, the volatile functions its query
// calls: functions, aggregates and window functions by OID, and the
// functions behind its operators, as the stored query tree names them
// (pg_node_tree's text form; built-ins appear there though pg_depend
// leaves them out). A materialized view's query runs as pgveil's own role
// at every refresh: pg_terminate_backend over pg_stat_activity would stop
// pgveil's connections, pg_sleep would hold locks, query_to_xml would run
// any query as pgveil.
const volatileCallsSQL = `SELECT DISTINCT w.ev_class, p.oid::pg_catalog.regprocedure::text
FROM pg_catalog.pg_rewrite w
CROSS JOIN LATERAL pg_catalog.regexp_matches(w.ev_action::text, ':(funcid|aggfnoid|winfnoid|opfuncid|opno) ([0-9]+)', 'g') AS m
LEFT JOIN pg_catalog.pg_operator o ON m[1] = 'opno' AND o.oid = m[2]::oid
JOIN pg_catalog.pg_proc p ON p.oid = CASE WHEN m[1] = 'opno' THEN o.oprcode::oid ELSE m[2]::oid END
WHERE w.ev_class = ANY($1::oid[]) AND p.provolatile = 'v'
ORDER BY 1, 2`

// ViewDecision is whether the replica gets a view, and why not.
type ViewDecision struct {
	View *View
	// KeptOut says why the replica does not get the view ("" : it does):
	// the first thing it reads that the replica lacks.
	KeptOut string
	// Views are the views (of the same list) it reads directly.
	Views []schema.TableName
	// Tables are the replicated tables it reads, directly or through
	// other views.
	Tables []schema.TableName
	// ReadsMaterialized: it reads a materialized view, directly or not.
	ReadsMaterialized bool
}

// DecideViews decides, for each view, whether the replica can have it:
// every column it reads is a column the plan replicates, every relation it
// reads is a replicated table or a view the replica gets, and it calls no
// function outside pg_catalog (PostgreSQL records no dependency on
// built-ins: any function it records is one pgveil does not replicate);
// a materialized view calls no volatile function either.
// Types are not judged here: a view using a type the replica lacks fails
// to be created, and says so. The decisions come in an order where every
// view follows the views it reads.
func DecideViews(views []*View, plan *transform.Plan) []*ViewDecision {
	byName := map[schema.TableName]*View{}
	for _, v := range views {
		byName[v.Name] = v
	}
	done := map[schema.TableName]*ViewDecision{}
	var out []*ViewDecision
	var visit func(v *View, path []schema.TableName) *ViewDecision
	visit = func(v *View, path []schema.TableName) *ViewDecision {
		if d := done[v.Name]; d != nil {
			return d
		}
		d := &ViewDecision{View: v}
		if slices.Contains(path, v.Name) {
			// Not possible in PostgreSQL; kept out rather than looping.
			d.KeptOut = "its definition reads itself"
			return d
		}
		tables := map[schema.TableName]bool{}
		keep := func(reason string) {
			if d.KeptOut == "" {
				d.KeptOut = reason
			}
		}
		if v.Materialized && len(v.Volatile) > 0 {
			keep(fmt.Sprintf("calls %s, a volatile function, which a materialized view would run as pgveil's own role at every refresh", v.Volatile[0]))
		}
		for _, r := range v.Reads {
			switch {
			case r.Function:
				keep(fmt.Sprintf("calls %s, which pgveil does not replicate (only built-in functions are on the replica)", r.Object))
			case r.Type:
				// Judged by CREATE on the replica.
			case r.Object != "":
				keep(fmt.Sprintf("uses %s, which pgveil does not replicate", r.Object))
			case r.RelKind == "v" || r.RelKind == "m":
				dep := byName[r.Relation]
				if dep == nil {
					keep(fmt.Sprintf("reads %s, a view outside the replicated schemas", r.Relation.QualifiedName()))
					continue
				}
				if !slices.Contains(d.Views, r.Relation) {
					d.Views = append(d.Views, r.Relation)
				}
				dd := visit(dep, append(path, v.Name))
				if dd.KeptOut != "" {
					keep(fmt.Sprintf("reads %s, which is kept out: %s", r.Relation.QualifiedName(), dd.KeptOut))
					continue
				}
				for _, t := range dd.Tables {
					tables[t] = true
				}
				if dep.Materialized || dd.ReadsMaterialized {
					d.ReadsMaterialized = true
				}
			case r.RelKind == "r" || r.RelKind == "p":
				tp := plan.Table(r.Relation.Schema, r.Relation.Name)
				if tp == nil {
					keep(fmt.Sprintf("reads %s, which no rule replicates", r.Relation.QualifiedName()))
					continue
				}
				tables[r.Relation] = true
				if r.Column == "" {
					continue // the replica's table holds only what is replicated
				}
				if reason := columnMissing(tp, r.Column); reason != "" {
					keep(fmt.Sprintf("reads %s.%s, %s", r.Relation.QualifiedName(), schema.QuoteIdent(r.Column), reason))
				}
			default:
				keep(fmt.Sprintf("reads %s (relkind %s), which pgveil does not replicate", r.Relation.QualifiedName(), r.RelKind))
			}
		}
		for t := range tables {
			d.Tables = append(d.Tables, t)
		}
		sort.Slice(d.Tables, func(i, j int) bool { return d.Tables[i].QualifiedName() < d.Tables[j].QualifiedName() })
		done[v.Name] = d
		out = append(out, d)
		return d
	}
	for _, v := range views {
		visit(v, nil)
	}
	return out
}

// columnMissing says why the plan does not replicate column of tp, or ""
// when it does.
func columnMissing(tp *transform.TablePlan, column string) string {
	for _, c := range tp.Columns {
		if c.Column.Name == column {
			return ""
		}
	}
	switch {
	case slices.Contains(tp.Dropped, column):
		return "which its rule drops"
	case slices.Contains(tp.Table.Generated, column):
		return "a generated column, which PostgreSQL does not publish"
	}
	return "which no rule replicates"
}
