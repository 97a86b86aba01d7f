package source

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
	"pgveil/transform"
)

// PublicationSpec is what the publication must hold.
type PublicationSpec struct {
	Name string
	// ColumnLists is the publication mode column_lists: tables are
	// published with column lists and key-only row filters where the
	// server allows. Without it (migration_safe, the default) tables are
	// published whole, so that no migration fails because of pgveil.
	ColumnLists bool
	Tables      []PublishedTable // in plan order
}

// Table returns the spec of the named table, or nil.
func (s *PublicationSpec) Table(n schema.TableName) *PublishedTable {
	for i := range s.Tables {
		if s.Tables[i].Name == n {
			return &s.Tables[i]
		}
	}
	return nil
}

// PublishedTable is one table of the publication.
type PublishedTable struct {
	Name schema.TableName
	// Columns is the publication's column list, in attribute order; nil
	// means no column list (every column is published).
	Columns []string
	// RowFilter is the `where` pushed down as the publication's row
	// filter, "" when none; RowFilterColumns are the columns it uses, in
	// attribute order.
	RowFilter        string
	RowFilterColumns []string
	// InProcessFilter is the table's `where` when it cannot be pushed
	// down: the pipeline must evaluate it (see Filter). FilterColumns are
	// the columns it references, in attribute order; they are published
	// (added to Columns) even when the rules drop them, and the pipeline
	// drops them after filtering. FilterTypes are their exact SQL types
	// (from TableInfo.ColumnTypes), which Filter casts to.
	InProcessFilter string
	FilterColumns   []string
	FilterTypes     []string
	// FilterCollations are the FilterColumns' collations where they are
	// not their types' own (TableInfo.ColumnCollations), else "".
	FilterCollations []string
	// Extra are the columns that reach pgveil but that the plan does not
	// replicate (filter columns the rules drop, and every dropped column of
	// a table published without a column list): the pipeline drops them.
	Extra []string
	// Notes are human-readable decisions, for logs and `validate`.
	Notes []string
}

// PlanPublication decides, from the plan and catalog, the publication's
// content (see PublishedTable).
//
// Without columnLists (publication mode migration_safe, the default) every
// table is published whole, with neither a column list nor a row filter:
// PostgreSQL refuses DROP COLUMN and ALTER COLUMN ... TYPE on a column a
// publication's column list or row filter uses, and production's
// migrations must not fail because of pgveil. The dropped and unruled
// columns travel to pgveil, which removes them before anything is written
// or logged (Extra), and every `where` is the InProcessFilter.
//
// With columnLists:
//
//   - the column list is the plan's published columns plus the replica
//     identity columns (always) plus the in-process filter's columns, in
//     attribute order. A REPLICA IDENTITY FULL table gets no column list
//     (a list would have to cover every column), nor does any table before
//     PostgreSQL 15 (no column lists): then the dropped columns travel to
//     pgveil, which drops them, and a note says so;
//   - the table's `where` is pushed down as the row filter only on
//     PostgreSQL 15 or later, when it references replica identity columns
//     alone (otherwise every production UPDATE and DELETE of the table
//     would fail), and when PostgreSQL accepts it as a row filter and then
//     still plans an UPDATE and a DELETE of the table (checked with a
//     throwaway publication in a transaction that is rolled back);
//     otherwise it becomes the InProcessFilter.
//
// The columns a `where` references are found by asking PostgreSQL (a
// temporary view's dependencies, rolled back). A `where` that is not valid
// SQL for the table, references the whole row or a generated column, or
// cannot be evaluated by Filter, is an error naming the table.
func PlanPublication(ctx context.Context, conn *pgx.Conn, srv *Server, cat *schema.Catalog, plan *transform.Plan, name string, columnLists bool) (*PublicationSpec, error) {
	if srv == nil || cat == nil || plan == nil {
		return nil, errors.New("planning the publication: server, catalog and plan are required")
	}
	if name == "" {
		return nil, errors.New("planning the publication: no publication name")
	}
	spec := &PublicationSpec{Name: name, ColumnLists: columnLists}
	for _, tp := range plan.Tables() {
		pt, err := planTable(ctx, conn, srv, cat, tp, columnLists)
		if err != nil {
			return nil, err
		}
		spec.Tables = append(spec.Tables, pt)
	}
	return spec, nil
}

// hasIdentity reports whether UPDATE and DELETE of the table can be
// published at all.
func hasIdentity(info *schema.TableInfo) bool {
	switch info.ReplicaIdentity {
	case 'f':
		return true
	case 'd', 'i':
		return len(info.IdentityColumns) > 0
	}
	return false
}

// inOrder returns the columns of t that are in set, in attribute order.
func inOrder(t *schema.Table, set ...[]string) []string {
	var out []string
	for _, c := range t.Columns {
		for _, s := range set {
			if slices.Contains(s, c.Name) {
				out = append(out, c.Name)
				break
			}
		}
	}
	return out
}

func planTable(ctx context.Context, conn *pgx.Conn, srv *Server, cat *schema.Catalog, tp *transform.TablePlan, columnLists bool) (PublishedTable, error) {
	name := schema.TableName{Schema: tp.Table.Schema, Name: tp.Table.Name}
	q := name.QualifiedName()
	t, info := cat.Table(name)
	if t == nil || info == nil {
		return PublishedTable{}, fmt.Errorf("planning the publication: %s: table not in the source catalog", q)
	}
	pt := PublishedTable{Name: name}
	planned := tp.ColumnNames()
	columnList := columnLists && srv.Version >= 150000 && info.ReplicaIdentity != 'f'
	base := inOrder(t, planned, info.IdentityColumns)
	if tp.Where != "" {
		if err := planWhere(ctx, conn, srv, t, info, tp.Where, base, columnLists, columnList, &pt); err != nil {
			return PublishedTable{}, err
		}
	}
	if columnList {
		pt.Columns = inOrder(t, base, pt.FilterColumns)
	}
	published := pt.Columns
	if published == nil {
		published = columnNames(t)
	}
	for _, c := range published {
		if !slices.Contains(planned, c) {
			pt.Extra = append(pt.Extra, c)
		}
	}
	if pt.Columns == nil && len(tp.Dropped) > 0 {
		why := "REPLICA IDENTITY FULL: no column list (it would have to cover every column)"
		switch {
		case !columnLists:
			why = "published whole (publication_mode migration_safe: production can drop and retype any column)"
		case srv.Version < 150000:
			why = fmt.Sprintf("PostgreSQL %s has no publication column lists (15 has)", srv.VersionString())
		}
		pt.Notes = append(pt.Notes, fmt.Sprintf("%s: dropped columns %s travel to pgveil and are dropped there", why, schema.QuoteIdents(tp.Dropped)))
	}
	for _, c := range pt.Columns {
		if slices.Contains(tp.Dropped, c) && slices.Contains(info.IdentityColumns, c) && !slices.Contains(pt.FilterColumns, c) {
			pt.Notes = append(pt.Notes, fmt.Sprintf("replica identity column %s is published though the rules drop it (production UPDATE and DELETE need it); pgveil drops it", schema.QuoteIdent(c)))
		}
	}
	return pt, nil
}

// planWhere decides where a table's `where` is evaluated, filling in
// RowFilter or InProcessFilter, FilterColumns, FilterTypes and notes.
func planWhere(ctx context.Context, conn *pgx.Conn, srv *Server, t *schema.Table, info *schema.TableInfo,
	where string, base []string, columnLists, columnList bool, pt *PublishedTable) error {
	q := t.QualifiedName()
	tx, err := beginLimited(ctx, conn)
	if err != nil {
		return fmt.Errorf("planning the publication: %s: %w", q, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	refs, err := referencedColumns(ctx, tx, info.OID, q, where)
	if err != nil {
		return fmt.Errorf("planning the publication: %s: where: %w", q, err)
	}
	if err := checkDeterministic(ctx, tx, t, info, where); err != nil {
		return fmt.Errorf("planning the publication: %s: where: %w", q, err)
	}
	for _, c := range refs {
		if slices.Contains(t.Generated, c) {
			return fmt.Errorf("planning the publication: %s: where references generated column %s, which PostgreSQL does not publish and pgveil therefore cannot filter on; use the columns it is computed from", q, schema.QuoteIdent(c))
		}
	}
	var nonIdentity []string
	if info.ReplicaIdentity != 'f' {
		for _, c := range refs {
			if !slices.Contains(info.IdentityColumns, c) {
				nonIdentity = append(nonIdentity, c)
			}
		}
	}
	var why string
	switch {
	case !columnLists:
		why = "publication_mode migration_safe (as a row filter it would make production's ALTER COLUMN ... TYPE fail on the columns it uses)"
	case srv.Version < 150000:
		why = fmt.Sprintf("PostgreSQL %s has no publication row filters (15 has)", srv.VersionString())
	case !hasIdentity(info):
		why = "the table has no replica identity"
	case len(nonIdentity) > 0:
		why = fmt.Sprintf("where uses non-identity column(s) %s (as a row filter it would make production UPDATE and DELETE fail)", schema.QuoteIdents(nonIdentity))
	default:
		var cols []string
		if columnList {
			cols = base
		}
		ok, reason, err := tryRowFilter(ctx, tx, t, info, cols, where)
		if err != nil {
			return fmt.Errorf("planning the publication: %s: testing the where as a row filter: %w", q, err)
		}
		if ok {
			pt.RowFilter, pt.RowFilterColumns = where, inOrder(t, refs)
			pt.Notes = append(pt.Notes, "where pushed down as the publication's row filter: filtered rows never leave production")
			return nil
		}
		why = reason
	}
	if err := tx.Rollback(ctx); err != nil {
		return fmt.Errorf("planning the publication: %s: %w", q, err)
	}
	pt.InProcessFilter = where
	pt.FilterColumns = inOrder(t, refs)
	pt.FilterTypes = make([]string, len(pt.FilterColumns))
	pt.FilterCollations = make([]string, len(pt.FilterColumns))
	for i, c := range pt.FilterColumns {
		pt.FilterTypes[i] = info.ColumnTypes[c]
		pt.FilterCollations[i] = info.ColumnCollations[c]
	}
	var unpublished []string
	for _, c := range pt.FilterColumns {
		if !slices.Contains(base, c) {
			unpublished = append(unpublished, c)
		}
	}
	note := why + ": filtered in pgveil"
	if len(unpublished) > 0 {
		note += fmt.Sprintf("; column(s) %s published but not replicated", schema.QuoteIdents(unpublished))
	}
	pt.Notes = append(pt.Notes, note)
	f, err := NewFilter(t, *pt)
	if err != nil {
		return fmt.Errorf("planning the publication: %w", err)
	}
	if err := f.validate(ctx, conn); err != nil {
		return fmt.Errorf("planning the publication: %w", err)
	}
	return nil
}

// referencedColumns returns the columns of table oid (named q) that expr
// references, in attribute order, by asking PostgreSQL: a temporary view
// selecting from the table WHERE (expr) depends on exactly those columns.
// It runs inside tx under a savepoint that is rolled back, so nothing
// stays behind and tx stays usable. An expression that is not valid for
// the table, or references the whole row, is an error.
func referencedColumns(ctx context.Context, tx pgx.Tx, oid uint32, q, expr string) (refs []string, err error) {
	undo, err := savepoint(ctx, tx, "pgveil_refs")
	if err != nil {
		return nil, err
	}
	defer undo(&err)
	view := scratchName("pgveil_where_")
	if err := execOne(ctx, tx.Conn(), "CREATE TEMPORARY VIEW "+view+" AS SELECT 1 FROM ONLY "+q+" WHERE (\n"+expr+"\n)"); err != nil {
		if transient(err) {
			return nil, err
		}
		return nil, schema.WrapSQL(err, "not a valid condition on the table")
	}
	rows, err := tx.Query(ctx, `
SELECT a.attname::text
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
  AND d.refclassid = 'pg_catalog.pg_class'::regclass
  AND r.ev_class = $1::text::regclass
  AND d.refobjid = $2
  AND d.refobjsubid > 0
GROUP BY a.attnum, a.attname
ORDER BY a.attnum`, "pg_temp."+view, oid)
	if err != nil {
		return nil, schema.WrapSQL(err, "reading the columns it references")
	}
	refs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, schema.WrapSQL(err, "reading the columns it references")
	}
	// A whole-row reference ("t IS NOT NULL") records no column dependency.
	var wholeRow bool
	if err := tx.QueryRow(ctx, `SELECT ev_action::text ~ ':varattno 0 ' FROM pg_catalog.pg_rewrite WHERE ev_class = $1::text::regclass`,
		"pg_temp."+view).Scan(&wholeRow); err != nil {
		return nil, schema.WrapSQL(err, "reading the columns it references")
	}
	if wholeRow {
		return nil, errors.New("references a whole row; name the columns instead")
	}
	return refs, nil
}

// checkDeterministic fails when expr's verdict on a row could change
// without a change of the row: a subquery or a reference to another table
// (a change there sends pgveil nothing, so a row that should leave the
// replica stays), or a function that is not immutable (now(),
// current_user: a row that ages out stays, and the copy and the stream
// disagree). PostgreSQL applies exactly these rules to an index
// predicate, so the expression is tried as one, on an empty temporary
// table with t's columns, types and collations (named like it, so that
// qualified references resolve; built from the catalog, as LIKE would
// need SELECT on the whole table, which a role with column grants lacks),
// under a savepoint that is rolled back.
func checkDeterministic(ctx context.Context, tx pgx.Tx, t *schema.Table, info *schema.TableInfo, expr string) (err error) {
	undo, err := savepoint(ctx, tx, "pgveil_det")
	if err != nil {
		return err
	}
	defer undo(&err)
	name := "pg_temp." + schema.QuoteIdent(t.Name)
	cols := make([]string, 0, len(t.Columns))
	for _, c := range t.Columns {
		typ := info.ColumnTypes[c.Name]
		if typ == "" {
			typ = c.Type.String()
		}
		if coll := info.ColumnCollations[c.Name]; coll != "" {
			typ += " COLLATE " + coll
		}
		cols = append(cols, schema.QuoteIdent(c.Name)+" "+typ)
	}
	if err := execOne(ctx, tx.Conn(), "CREATE TEMPORARY TABLE "+schema.QuoteIdent(t.Name)+" ("+strings.Join(cols, ", ")+")"); err != nil {
		return schema.WrapSQL(err, "checking it")
	}
	if err := execOne(ctx, tx.Conn(), "CREATE INDEX ON "+name+" ((1)) WHERE (\n"+expr+"\n)"); err != nil {
		if transient(err) {
			return err
		}
		return schema.WrapSQL(err, "must give the same answer for a row whenever it is evaluated: only the table's own columns, constants and immutable functions and operators (no subquery, no other table, no now() or current_user), as PostgreSQL requires of an index predicate")
	}
	return nil
}

// publishOptions is the WITH clause of pgveil's publications.
func publishOptions(version int) string {
	publish := "insert, update, delete, truncate"
	if version < 110000 {
		publish = "insert, update, delete"
	}
	s := "publish = '" + publish + "'"
	if version >= 130000 {
		// Changes of partitions are published as changes of the
		// partitioned table, under its column list and row filter; else
		// each partition would be published with all of its columns.
		s += ", publish_via_partition_root = true"
	}
	return s
}

// publicationItem is one table of a FOR TABLE or SET TABLE list.
func publicationItem(q string, cols []string, filter string) string {
	s := "ONLY " + q
	if cols != nil {
		s += " (" + schema.QuoteIdents(cols) + ")"
	}
	if filter != "" {
		s += " WHERE (\n" + filter + "\n)"
	}
	return s
}

// tryRowFilter tests, inside tx under a savepoint that is rolled back,
// whether PostgreSQL accepts where as the table's row filter with the
// given column list, and still plans an UPDATE and a DELETE of the table.
// It returns false and the reason when it does not; an error only for
// what is worth retrying (timeouts) or unexpected.
func tryRowFilter(ctx context.Context, tx pgx.Tx, t *schema.Table, info *schema.TableInfo, cols []string, where string) (ok bool, reason string, err error) {
	undo, err := savepoint(ctx, tx, "pgveil_rowfilter")
	if err != nil {
		return false, "", err
	}
	defer undo(&err)
	q := t.QualifiedName()
	pub := scratchName("pgveil_check_")
	err = execOne(ctx, tx.Conn(), "CREATE PUBLICATION "+pub+" FOR TABLE "+publicationItem(q, cols, where)+" WITH ("+publishOptions(150000)+")")
	if err != nil {
		if transient(err) {
			return false, "", err
		}
		if schema.SQLState(err) == schema.CodeInsufficientPrivilege {
			return false, "could not test it as a row filter (" + schema.SQLText(err) + ")", nil
		}
		return false, "PostgreSQL does not accept it as a row filter (" + schema.SQLText(err) + ")", nil
	}
	if err := explainWrites(ctx, tx.Conn(), q, firstColumn(t), info.Partitioned); err != nil {
		if transient(err) {
			return false, "", err
		}
		return false, "as a row filter it would make production writes fail (" + schema.SQLText(err) + ")", nil
	}
	return true, "", nil
}

// firstColumn is a column an UPDATE can SET, or "".
func firstColumn(t *schema.Table) string {
	if len(t.Columns) == 0 {
		return ""
	}
	return t.Columns[0].Name
}

// explainWrites asks PostgreSQL to plan (EXPLAIN, without running) an
// UPDATE and a DELETE of every row of table q. Planning checks the
// publications' replica identity requirements for the table and, for a
// partitioned table, for every partition, and fails with the very error
// production's writes would get; no trigger fires and no row is touched.
func explainWrites(ctx context.Context, conn *pgx.Conn, q, setColumn string, partitioned bool) error {
	only := "ONLY "
	if partitioned {
		only = "" // ONLY would leave the partitions out of the plan
	}
	if setColumn != "" {
		// = DEFAULT, not = itself: an identity column GENERATED ALWAYS
		// may only be set to DEFAULT, and the plan checks the same.
		c := schema.QuoteIdent(setColumn)
		if err := execOne(ctx, conn, "EXPLAIN UPDATE "+only+q+" SET "+c+" = DEFAULT"); err != nil {
			return err
		}
	}
	return execOne(ctx, conn, "EXPLAIN DELETE FROM "+only+q)
}

// columnNames returns the names of t's columns, in attribute order.
func columnNames(t *schema.Table) []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return names
}
