package source

import (
	"context"
	"pgveil/schema"
	"slices"

	"github.com/jackc/pgx/v5"
)

// A publication's column list and row filter are recorded as dependencies
// on the columns they name, and PostgreSQL refuses ALTER TABLE ... DROP
// COLUMN and ALTER COLUMN ... TYPE on such a column (checked on 15.18:
// "cannot drop column ... because other objects depend on it", "cannot
// alter type of a column used by a publication WHERE clause"). These are
// the columns a publication locks against production's migrations.

// LockedColumns are, by table (qualified, quoted), the columns production
// cannot drop or retype while spec is the publication: its column lists'
// and row filters' columns. Empty for publication mode migration_safe,
// which publishes whole tables.
func (s *PublicationSpec) LockedColumns() map[string][]string {
	out := map[string][]string{}
	for _, pt := range s.Tables {
		cols := slices.Clone(pt.Columns)
		for _, c := range pt.RowFilterColumns {
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
		if len(cols) > 0 {
			out[pt.Name.QualifiedName()] = cols
		}
	}
	return out
}

// PublicationLocks reads, from the catalog's dependencies, the columns the
// live publication name locks against production's migrations, by table
// (qualified, quoted; columns in attribute order). exists is false when
// there is no such publication.
func PublicationLocks(ctx context.Context, conn *pgx.Conn, name string) (locked map[string][]string, exists bool, err error) {
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname = $1)`, name).Scan(&exists); err != nil {
		return nil, false, schema.WrapSQL(err, "reading publication %s", schema.QuoteIdent(name))
	}
	if !exists {
		return nil, false, nil
	}
	rows, err := conn.Query(ctx, `
SELECT format('%I.%I', n.nspname, c.relname), array_agg(a.attname::text ORDER BY a.attnum)
FROM pg_catalog.pg_publication p
JOIN pg_catalog.pg_publication_rel pr ON pr.prpubid = p.oid
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_publication_rel'::regclass AND d.objid = pr.oid
  AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
JOIN pg_catalog.pg_class c ON c.oid = d.refobjid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE p.pubname = $1
GROUP BY n.nspname, c.relname`, name)
	if err != nil {
		return nil, true, schema.WrapSQL(err, "reading the columns publication %s names", schema.QuoteIdent(name))
	}
	locked = map[string][]string{}
	for rows.Next() {
		var table string
		var cols []string
		if err := rows.Scan(&table, &cols); err != nil {
			return nil, true, schema.WrapSQL(err, "reading the columns publication %s names", schema.QuoteIdent(name))
		}
		locked[table] = slices.Compact(cols)
	}
	if err := rows.Err(); err != nil {
		return nil, true, schema.WrapSQL(err, "reading the columns publication %s names", schema.QuoteIdent(name))
	}
	return locked, true, nil
}

// BrokenWrites returns the tables (qualified, quoted) of publication name
// whose column list leaves out a column of their replica identity: once
// that holds, PostgreSQL refuses every UPDATE and DELETE of the table in
// production ("cannot update table ...: column list used by the
// publication does not cover the replica identity"). pgveil never makes
// such a list, but production can come to it by changing the table's
// REPLICA IDENTITY (to FULL, or to another index) under column_lists.
// It reads the catalog only and takes no lock.
func BrokenWrites(ctx context.Context, conn *pgx.Conn, name string) ([]string, error) {
	rows, err := conn.Query(ctx, `
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_catalog.pg_publication p
JOIN pg_catalog.pg_publication_rel pr ON pr.prpubid = p.oid
JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE p.pubname = $1 AND pr.prattrs IS NOT NULL AND (
  (c.relreplident = 'f' AND EXISTS (
     SELECT FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       AND a.attnum <> ALL (pr.prattrs::int2[])))
  OR (c.relreplident IN ('d', 'i') AND EXISTS (
     SELECT FROM pg_catalog.pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) AS k(attnum)
     WHERE i.indrelid = c.oid AND k.attnum > 0
       AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))
       AND k.attnum <> ALL (pr.prattrs::int2[]))))
ORDER BY 1`, name)
	if err != nil {
		return nil, schema.WrapSQL(err, "checking publication %s against the tables' replica identity", schema.QuoteIdent(name))
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, schema.WrapSQL(err, "checking publication %s against the tables' replica identity", schema.QuoteIdent(name))
	}
	return tables, nil
}

// Widened returns the tables of publication spec.Name that send more
// columns than spec asks: for a table spec gives a column list, a column
// outside it (or no column list at all). Tables spec does not list are
// left alone: the tables' owner adds them for a rule change that waits
// (pgveil ignores their changes until it is in force). Under
// publication_mode column_lists that is production's data leaving it
// against the rules (someone widened the publication by hand, or a
// session forged what a migration trigger put back). Names only; it
// reads the catalog and takes no lock.
func Widened(ctx context.Context, conn *pgx.Conn, spec *PublicationSpec) ([]string, error) {
	rows, err := conn.Query(ctx, `
SELECT n.nspname, c.relname, pr.prattrs IS NULL,
       coalesce((SELECT array_agg(a.attname::text) FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum = ANY (pr.prattrs::int2[])), '{}')
FROM pg_catalog.pg_publication p
JOIN pg_catalog.pg_publication_rel pr ON pr.prpubid = p.oid
JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE p.pubname = $1
ORDER BY 1, 2`, spec.Name)
	if err != nil {
		return nil, schema.WrapSQL(err, "reading publication %s", schema.QuoteIdent(spec.Name))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			schemaName, name string
			whole            bool
			cols             []string
		)
		if err := rows.Scan(&schemaName, &name, &whole, &cols); err != nil {
			return nil, schema.WrapSQL(err, "reading publication %s", schema.QuoteIdent(spec.Name))
		}
		n := schema.TableName{Schema: schemaName, Name: name}
		pt := spec.Table(n)
		switch {
		case pt == nil, pt.Columns == nil:
		case whole:
			out = append(out, n.QualifiedName())
		default:
			for _, c := range cols {
				if !slices.Contains(pt.Columns, c) {
					out = append(out, n.QualifiedName())
					break
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, schema.WrapSQL(err, "reading publication %s", schema.QuoteIdent(spec.Name))
	}
	return out, nil
}
