package source

import (
	"context"
	"errors"
	"fmt"
	"pgveil/schema"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// UnsafeError is EnsurePublication's refusal: the publication asked for
// would make production writes fail (guarantee 5). Nothing was changed.
type UnsafeError struct {
	Publication string
	Problems    []Problem
}

// Error lists the problems, one per line.
func (e *UnsafeError) Error() string {
	return fmt.Sprintf("refusing to change publication %s: it would make production UPDATE or DELETE fail:\n%s",
		schema.QuoteIdent(e.Publication), problemLines(e.Problems))
}

// OwnerNeededError is returned by EnsurePublication when the publication
// must change and pgveil's role does not own every table concerned, which
// PostgreSQL requires. Statements are what the tables' owner (or a
// superuser) must run; they hold names only, no values. Once they have
// run, pgveil finds the publication in line and needs no ownership.
type OwnerNeededError struct {
	Publication string
	Role        string
	Tables      []string // qualified, quoted
	Statements  []string
	// Serves: the publication as it is, though unlike what the rules ask
	// (column lists where publication_mode migration_safe wants whole
	// tables, or tables the rules do not name), sends every change pgveil
	// needs, so pgveil can run with it meanwhile (see Warning).
	Serves bool
}

// Warning is what to log when Serves: pgveil runs, and what the
// statements would change.
func (e *OwnerNeededError) Warning() string {
	var b strings.Builder
	fmt.Fprintf(&b, "publication %s holds more than the rules ask (column lists, or tables the rules do not name, whose changes pgveil ignores), and role %s cannot change it (it does not own %s): pgveil replicates with it; to make it hold the rules alone (production cannot DROP or ALTER COLUMN ... TYPE a listed column meanwhile), a superuser (or the tables' owner) runs, in the production database:\n\n",
		schema.QuoteIdent(e.Publication), schema.QuoteIdent(e.Role), strings.Join(e.Tables, ", "))
	for _, s := range e.Statements {
		b.WriteString("  " + s + ";\n")
	}
	b.WriteString("\n(or set source.publication_mode: column_lists to keep the column lists on purpose)")
	return b.String()
}

func (e *OwnerNeededError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "publication %s does not match the rules, and role %s cannot change it: PostgreSQL lets only a table's owner add it to a publication, and %s does not own %s.\n",
		schema.QuoteIdent(e.Publication), schema.QuoteIdent(e.Role), schema.QuoteIdent(e.Role), strings.Join(e.Tables, ", "))
	b.WriteString("Have a superuser (or the tables' owner, if it has CREATE on the database) run, in the production database:\n\n")
	for _, s := range e.Statements {
		b.WriteString("  " + s + ";\n")
	}
	b.WriteString("\nthen start pgveil again: it checks that the publication holds the rules and goes on (or give its role the tables' owner role, GRANT owner TO role, to let it change the publication itself).")
	return b.String()
}

// tablesNotOwned returns, sorted, the tables among oids whose owner's
// rights the current role does not have (a superuser has every role's).
func tablesNotOwned(ctx context.Context, tx pgx.Tx, oids []uint32) ([]string, error) {
	rows, err := tx.Query(ctx, `
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY($1::oid[]) AND NOT pg_catalog.pg_has_role(c.relowner, 'USAGE')
ORDER BY 1`, oids)
	if err != nil {
		return nil, schema.WrapSQL(err, "reading the tables' owners")
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, schema.WrapSQL(err, "reading the tables' owners")
	}
	return names, nil
}

// currentRole is the role pgveil is connected as, for messages.
func currentRole(ctx context.Context, tx pgx.Tx) string {
	var r string
	if err := tx.QueryRow(ctx, "SELECT current_user").Scan(&r); err != nil {
		return "pgveil's role"
	}
	return r
}

// EnsurePublication makes the publication hold exactly spec: it creates it
// (publish = 'insert, update, delete, truncate', publish_via_partition_root
// = true so that partitions are published under their partitioned table's
// column list and row filter) or, when it exists and differs, alters it
// (options, then ALTER PUBLICATION ... SET TABLE with column lists and row
// filters), in one transaction with SET LOCAL lock_timeout and
// statement_timeout. It returns whether anything changed.
//
// Before changing anything it re-reads the live catalog in that
// transaction and checks guarantee 5 for every table and every leaf
// partition: the table has a replica identity, its identity columns are in
// the column list (every column for REPLICA IDENTITY FULL), and the row
// filter references identity columns only; otherwise it returns an
// *UnsafeError. After the change, still in the transaction, it reads the
// publication back (it must match spec exactly) and asks PostgreSQL to plan
// an UPDATE and a DELETE of every table, which fails exactly when
// production's writes would; any failure rolls everything back.
//
// cat is the catalog the spec was planned from: a table whose OID changed
// since (dropped and re-created) is an error.
func EnsurePublication(ctx context.Context, conn *pgx.Conn, spec *PublicationSpec, cat *schema.Catalog) (changed bool, err error) {
	return ensurePublication(ctx, conn, spec, cat, true)
}

// CheckPublication is EnsurePublication without the change: it returns
// whether the publication must change, an *OwnerNeededError when pgveil's
// role could not change it, and an *UnsafeError when the change would
// make production writes fail. A rule change waits on it before it is put
// in force, so that the rules in force keep streaming meanwhile.
func CheckPublication(ctx context.Context, conn *pgx.Conn, spec *PublicationSpec, cat *schema.Catalog) (mustChange bool, err error) {
	return ensurePublication(ctx, conn, spec, cat, false)
}

func ensurePublication(ctx context.Context, conn *pgx.Conn, spec *PublicationSpec, cat *schema.Catalog, apply bool) (changed bool, err error) {
	if spec == nil || spec.Name == "" {
		return false, errors.New("ensuring the publication: no publication name")
	}
	pubName := schema.QuoteIdent(spec.Name)
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("ensuring publication %s: %w", pubName, err)
	}
	tx, err := beginLimited(ctx, conn)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	version, err := schema.ServerVersion(ctx, tx)
	if err != nil {
		return fail(err)
	}

	// The live state of every table, and the guarantee-5 check.
	live, problems, err := readLiveTables(ctx, tx, version, spec, cat)
	if err != nil {
		return fail(err)
	}
	if len(problems) > 0 {
		return false, &UnsafeError{Publication: spec.Name, Problems: problems}
	}

	want, err := desiredState(ctx, tx, version, spec, live)
	if err != nil {
		return fail(err)
	}
	cur, err := readPublication(ctx, tx, version, spec.Name)
	if err != nil {
		return fail(err)
	}
	if cur != nil && cur.allTables {
		return fail(errors.New("it is defined FOR ALL TABLES, which would publish every column of every table: drop it (DROP PUBLICATION " + pubName + ") and pgveil will create it"))
	}
	if cur != nil && cur.equal(want) {
		return false, nil
	}

	stmts := publicationChanges(pubName, version, spec, cur, want)
	// Only a table's owner may add it to (or drop it from) a publication.
	// A role without that right does not need it once the publication
	// holds the rules: hand the statements to someone who has it.
	oids := cur.relOIDs()
	for _, lt := range live {
		oids = append(oids, lt.oid)
	}
	notOwned, err := tablesNotOwned(ctx, tx, oids)
	if err != nil {
		return fail(err)
	}
	if len(notOwned) > 0 {
		return false, &OwnerNeededError{Publication: spec.Name, Role: currentRole(ctx, tx), Tables: notOwned, Statements: stmts,
			Serves: cur.serves(want, spec, live)}
	}
	if !apply {
		return len(stmts) > 0, nil
	}
	for _, s := range stmts {
		if err := execOne(ctx, conn, s); err != nil {
			return fail(schema.WrapSQL(err, "changing the publication"))
		}
	}

	if err := checkApplied(ctx, conn, tx, version, spec, want, live); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return true, nil
}

// readLiveTables reads the live state of every table of spec, and checks
// guarantee 5 on it: the problems are the reasons production's UPDATE
// or DELETE would fail with the publication the spec describes. cat is
// the catalog the spec was planned from (nil: not checked): a table
// re-created since is an error.
func readLiveTables(ctx context.Context, tx pgx.Tx, version int, spec *PublicationSpec, cat *schema.Catalog) ([]*liveTable, []Problem, error) {
	live := make([]*liveTable, len(spec.Tables))
	var problems []Problem
	for i := range spec.Tables {
		pt := &spec.Tables[i]
		q := pt.Name.QualifiedName()
		lt, err := readLiveTable(ctx, tx, version, pt.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", q, err)
		}
		if lt == nil {
			return nil, nil, fmt.Errorf("%s: table not found in the source database", q)
		}
		if cat != nil {
			if info := cat.Info[pt.Name]; info != nil && info.OID != lt.oid {
				return nil, nil, fmt.Errorf("%s: the table was re-created since the catalog was read: read the catalog and plan again", q)
			}
		}
		live[i] = lt
		var refs []string
		if pt.RowFilter != "" {
			if version < 150000 {
				problems = append(problems, Problem{Table: q, Msg: "row filters need PostgreSQL 15"})
				continue
			}
			if refs, err = referencedColumns(ctx, tx, lt.oid, q, pt.RowFilter); err != nil {
				return nil, nil, fmt.Errorf("%s: row filter: %w", q, err)
			}
		}
		if pt.Columns != nil && version < 150000 {
			problems = append(problems, Problem{Table: q, Msg: "column lists need PostgreSQL 15"})
			continue
		}
		for _, msg := range checkIdentity(lt, pt.Columns, refs) {
			problems = append(problems, Problem{Table: q, Msg: msg})
		}
	}
	return live, problems, nil
}

// publicationChanges returns the statements that turn cur (nil: no
// publication yet) into want, the publication spec describes.
func publicationChanges(pubName string, version int, spec *PublicationSpec, cur, want *pubState) []string {
	items := make([]string, len(spec.Tables))
	for i, pt := range spec.Tables {
		items[i] = publicationItem(pt.Name.QualifiedName(), pt.Columns, pt.RowFilter)
	}
	if cur == nil {
		s := "CREATE PUBLICATION " + pubName
		if len(items) > 0 {
			s += " FOR TABLE " + strings.Join(items, ", ")
		}
		return []string{s + " WITH (" + publishOptions(version) + ")"}
	}
	var stmts []string
	if !cur.sameOptions(want) {
		stmts = append(stmts, "ALTER PUBLICATION "+pubName+" SET ("+publishOptions(version)+")")
	}
	if cur.sameTables(want) {
		return stmts
	}
	if len(items) > 0 {
		return append(stmts, "ALTER PUBLICATION "+pubName+" SET TABLE "+strings.Join(items, ", "))
	}
	if len(cur.rels) > 0 {
		names := make([]string, 0, len(cur.rels))
		for _, r := range cur.rels {
			names = append(names, "ONLY "+r.name)
		}
		slices.Sort(names)
		stmts = append(stmts, "ALTER PUBLICATION "+pubName+" DROP TABLE "+strings.Join(names, ", "))
	}
	if len(cur.schemas) > 0 {
		stmts = append(stmts, "ALTER PUBLICATION "+pubName+" DROP TABLES IN SCHEMA "+strings.Join(cur.schemas, ", "))
	}
	return stmts
}

// checkApplied reads the changed publication back (it must hold exactly
// want) and asks PostgreSQL whether production's writes still plan on
// every table; an *UnsafeError when one does not. The caller rolls back
// on any error, so nothing stays changed.
func checkApplied(ctx context.Context, conn *pgx.Conn, tx pgx.Tx, version int, spec *PublicationSpec, want *pubState, live []*liveTable) error {
	fail := func(err error) error {
		return fmt.Errorf("ensuring publication %s: %w", schema.QuoteIdent(spec.Name), err)
	}
	after, err := readPublication(ctx, tx, version, spec.Name)
	if err != nil {
		return fail(err)
	}
	if after == nil || !after.equal(want) {
		return fail(errors.New("after the change the publication does not hold exactly the spec (is a row filter more than one expression?); nothing was changed"))
	}
	for i, pt := range spec.Tables {
		if err := explainWrites(ctx, conn, pt.Name.QualifiedName(), firstOf(live[i].columns), live[i].partitioned); err != nil {
			if transient(err) {
				return fail(fmt.Errorf("%s: %w", pt.Name.QualifiedName(), err))
			}
			return &UnsafeError{Publication: spec.Name, Problems: []Problem{{Table: pt.Name.QualifiedName(), Msg: "PostgreSQL: " + schema.SQLText(err)}}}
		}
	}
	return nil
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// liveTable is a table as the catalog stands inside EnsurePublication's
// transaction.
type liveTable struct {
	oid         uint32
	partitioned bool
	relIdentity
	leaves []leafTable
}

// relIdentity is what guarantee 5 needs of one relation.
type relIdentity struct {
	replident byte
	columns   []string // not generated, attribute order
	attnums   map[string]int16
	identity  []string // the replica identity's columns; every column for FULL
}

type leafTable struct {
	name string // qualified
	relIdentity
}

// readLiveTable reads a table, and its leaf partitions when partitioned;
// nil when it does not exist.
func readLiveTable(ctx context.Context, tx pgx.Tx, version int, name schema.TableName) (*liveTable, error) {
	var (
		lt      liveTable
		relkind string
	)
	err := tx.QueryRow(ctx, `
SELECT c.oid, c.relkind::text FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, name.Schema, name.Name).Scan(&lt.oid, &relkind)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, schema.WrapSQL(err, "reading the table")
	}
	lt.partitioned = relkind == "p"
	if lt.relIdentity, err = readIdentity(ctx, tx, version, lt.oid); err != nil {
		return nil, err
	}
	if !lt.partitioned {
		return &lt, nil
	}
	rows, err := tx.Query(ctx, `
SELECT p.relid::oid, format('%I.%I', n.nspname, c.relname)
FROM pg_catalog.pg_partition_tree($1::oid::regclass) p
JOIN pg_catalog.pg_class c ON c.oid = p.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE p.isleaf AND p.relid <> $1::oid::regclass
ORDER BY 2`, lt.oid)
	if err != nil {
		return nil, schema.WrapSQL(err, "reading the partitions")
	}
	type leaf struct {
		oid  uint32
		name string
	}
	leaves, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (leaf, error) {
		var l leaf
		err := r.Scan(&l.oid, &l.name)
		return l, err
	})
	if err != nil {
		return nil, schema.WrapSQL(err, "reading the partitions")
	}
	for _, l := range leaves {
		id, err := readIdentity(ctx, tx, version, l.oid)
		if err != nil {
			return nil, fmt.Errorf("partition %s: %w", l.name, err)
		}
		lt.leaves = append(lt.leaves, leafTable{name: l.name, relIdentity: id})
	}
	return &lt, nil
}

// readIdentity reads a relation's replica identity and columns.
func readIdentity(ctx context.Context, tx pgx.Tx, version int, oid uint32) (relIdentity, error) {
	notGenerated, nkey := "true", "i.indnatts"
	if version >= 120000 {
		notGenerated = "a.attgenerated = ''"
	}
	if version >= 110000 {
		nkey = "i.indnkeyatts"
	}
	var (
		id        relIdentity
		replident string
		attnums   []int16
	)
	err := tx.QueryRow(ctx, `
SELECT c.relreplident::text,
  ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND `+notGenerated+`
        ORDER BY a.attnum),
  ARRAY(SELECT a.attnum FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND `+notGenerated+`
        ORDER BY a.attnum),
  ARRAY(SELECT a.attname::text
        FROM pg_catalog.pg_index i
        CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE i.indrelid = c.oid AND k.ord <= `+nkey+`
          AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))
        ORDER BY k.ord)
FROM pg_catalog.pg_class c WHERE c.oid = $1`, oid).Scan(&replident, &id.columns, &attnums, &id.identity)
	if err != nil {
		return relIdentity{}, schema.WrapSQL(err, "reading the replica identity")
	}
	id.replident = replident[0]
	id.attnums = make(map[string]int16, len(id.columns))
	for i, c := range id.columns {
		id.attnums[c] = attnums[i]
	}
	if id.replident == 'f' {
		id.identity = id.columns
	}
	return id, nil
}

// checkIdentity returns what is wrong (guarantee 5) with publishing a
// table with column list cols (nil: none) and a row filter referencing
// refs: each message names the column and says how to fix it.
func checkIdentity(lt *liveTable, cols, refs []string) []string {
	var msgs []string
	msgs = append(msgs, checkRel("", lt.relIdentity, cols, refs)...)
	for _, l := range lt.leaves {
		msgs = append(msgs, checkRel(l.name, l.relIdentity, cols, refs)...)
	}
	return msgs
}

func checkRel(partition string, id relIdentity, cols, refs []string) []string {
	var msgs []string
	add := func(format string, args ...any) {
		m := fmt.Sprintf(format, args...)
		if partition != "" {
			m = "partition " + partition + ": " + m
		}
		msgs = append(msgs, m)
	}
	if id.replident == 'n' || id.replident != 'f' && len(id.identity) == 0 {
		add("no replica identity (no primary key, or REPLICA IDENTITY NOTHING): once published, every UPDATE and DELETE would fail; add a primary key or set REPLICA IDENTITY FULL")
		return msgs
	}
	for _, c := range cols {
		if _, ok := id.attnums[c]; !ok {
			add("column list names %s, which is not a published column of the table (dropped, renamed or generated?)", schema.QuoteIdent(c))
		}
	}
	if cols != nil {
		for _, c := range id.identity {
			if !slices.Contains(cols, c) {
				if id.replident == 'f' {
					add("REPLICA IDENTITY FULL and the column list leaves out %s: a column list must cover every column", schema.QuoteIdent(c))
				} else {
					add("the column list leaves out replica identity column %s", schema.QuoteIdent(c))
				}
			}
		}
	}
	if id.replident != 'f' {
		for _, c := range refs {
			if !slices.Contains(id.identity, c) {
				add("the row filter uses %s, which is not a replica identity column", schema.QuoteIdent(c))
			}
		}
	}
	return msgs
}

// pubState is a publication's content, comparable with another.
type pubState struct {
	allTables                                 bool
	insert, update, delete, truncate, viaRoot bool
	schemas                                   []string // quoted
	rels                                      map[uint32]relState
}

// relOIDs are the relations the publication holds; none for a nil state.
func (s *pubState) relOIDs() []uint32 {
	if s == nil {
		return nil
	}
	oids := make([]uint32, 0, len(s.rels))
	for oid := range s.rels {
		oids = append(oids, oid)
	}
	return oids
}

type relState struct {
	name   string  // qualified, quoted
	cols   []int16 // sorted attnums; nil: no column list
	filter string  // deparsed row filter, "" when none
}

func (s *pubState) sameOptions(o *pubState) bool {
	return s.insert == o.insert && s.update == o.update && s.delete == o.delete &&
		s.truncate == o.truncate && s.viaRoot == o.viaRoot
}

func (s *pubState) sameTables(o *pubState) bool {
	if len(s.schemas) != len(o.schemas) || len(s.rels) != len(o.rels) {
		return false
	}
	for oid, r := range s.rels {
		w, ok := o.rels[oid]
		if !ok || !slices.Equal(r.cols, w.cols) || (r.cols == nil) != (w.cols == nil) || r.filter != w.filter {
			return false
		}
	}
	return true
}

func (s *pubState) equal(o *pubState) bool {
	return s.allTables == o.allTables && s.sameOptions(o) && s.sameTables(o)
}

// serves reports whether s, a live publication that differs from want,
// still sends every change spec (publication mode migration_safe) needs:
// every table of spec (and perhaps others, whose changes pgveil ignores
// as it ignores unruled columns), the same options, no row filter
// (whether one keeps exactly the rules' rows cannot be told), and on each
// table either no column list or one that holds every column pgveil reads
// (the replicated ones, the in-process filter's and the replica
// identity's). That is how a publication made under column_lists looks
// once the rules switch to migration_safe, or one the tables' owner has
// already changed for a rule change that waits for a grant: enough to
// replicate.
func (s *pubState) serves(want *pubState, spec *PublicationSpec, live []*liveTable) bool {
	if s == nil || spec.ColumnLists || s.allTables || len(s.schemas) > 0 || !s.sameOptions(want) || len(s.rels) < len(want.rels) {
		return false
	}
	for i, pt := range spec.Tables {
		lt := live[i]
		r, ok := s.rels[lt.oid]
		if !ok || r.filter != "" {
			return false
		}
		if r.cols == nil {
			continue
		}
		for _, c := range lt.columns {
			needed := !slices.Contains(pt.Extra, c) || slices.Contains(pt.FilterColumns, c) || slices.Contains(lt.identity, c)
			if needed && !slices.Contains(r.cols, lt.attnums[c]) {
				return false
			}
		}
	}
	return true
}

// desiredState is the pubState spec asks for. Row filters are compared
// as PostgreSQL deparses them: each is stored in a throwaway publication
// under a savepoint that is rolled back, and read back with pg_get_expr.
func desiredState(ctx context.Context, tx pgx.Tx, version int, spec *PublicationSpec, live []*liveTable) (*pubState, error) {
	want := &pubState{insert: true, update: true, delete: true, truncate: version >= 110000,
		viaRoot: version >= 130000, rels: map[uint32]relState{}}
	for i, pt := range spec.Tables {
		lt := live[i]
		r := relState{name: pt.Name.QualifiedName()}
		if pt.Columns != nil {
			r.cols = make([]int16, 0, len(pt.Columns))
			for _, c := range pt.Columns {
				r.cols = append(r.cols, lt.attnums[c])
			}
			slices.Sort(r.cols)
			r.cols = slices.Compact(r.cols)
		}
		if pt.RowFilter != "" {
			f, err := deparseFilter(ctx, tx, lt.oid, r.name, pt.RowFilter)
			if err != nil {
				return nil, fmt.Errorf("%s: row filter: %w", r.name, err)
			}
			r.filter = f
		}
		if _, dup := want.rels[lt.oid]; dup {
			return nil, fmt.Errorf("%s: listed twice", r.name)
		}
		want.rels[lt.oid] = r
	}
	return want, nil
}

func deparseFilter(ctx context.Context, tx pgx.Tx, oid uint32, q, filter string) (s string, err error) {
	undo, err := savepoint(ctx, tx, "pgveil_deparse")
	if err != nil {
		return "", err
	}
	defer undo(&err)
	pub := scratchName("pgveil_deparse_")
	if err := execOne(ctx, tx.Conn(), "CREATE PUBLICATION "+pub+" FOR TABLE "+publicationItem(q, nil, filter)+" WITH ("+publishOptions(150000)+")"); err != nil {
		return "", schema.WrapSQL(err, "PostgreSQL does not accept it")
	}
	err = tx.QueryRow(ctx, `
SELECT pg_catalog.pg_get_expr(pr.prqual, pr.prrelid)
FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
WHERE p.pubname = $1 AND pr.prrelid = $2`, pub, oid).Scan(&s)
	if err != nil {
		return "", schema.WrapSQL(err, "reading it back")
	}
	return s, nil
}

// readPublication reads a publication's content; nil when it does not
// exist.
func readPublication(ctx context.Context, tx pgx.Tx, version int, name string) (*pubState, error) {
	truncate, viaRoot := "true", "false"
	if version >= 110000 {
		truncate = "p.pubtruncate"
	}
	if version >= 130000 {
		viaRoot = "p.pubviaroot"
	}
	var (
		st  pubState
		oid uint32
	)
	err := tx.QueryRow(ctx, `
SELECT p.oid, p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, `+truncate+`, `+viaRoot+`
FROM pg_catalog.pg_publication p WHERE p.pubname = $1`, name).Scan(&oid, &st.allTables, &st.insert, &st.update, &st.delete, &st.truncate, &st.viaRoot)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, schema.WrapSQL(err, "reading the publication")
	}
	attrs, qual := "NULL::int2[]", "NULL::text"
	if version >= 150000 {
		attrs = "(SELECT array_agg(x ORDER BY x) FROM unnest(pr.prattrs::int2[]) AS x)"
		qual = "pg_catalog.pg_get_expr(pr.prqual, pr.prrelid)"
	}
	rows, err := tx.Query(ctx, `
SELECT pr.prrelid, format('%I.%I', n.nspname, c.relname), `+attrs+`, `+qual+`
FROM pg_catalog.pg_publication_rel pr
JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE pr.prpubid = $1`, oid)
	if err != nil {
		return nil, schema.WrapSQL(err, "reading the publication's tables")
	}
	defer rows.Close()
	st.rels = map[uint32]relState{}
	for rows.Next() {
		var (
			relid  uint32
			r      relState
			filter *string
		)
		if err := rows.Scan(&relid, &r.name, &r.cols, &filter); err != nil {
			return nil, schema.WrapSQL(err, "reading the publication's tables")
		}
		if filter != nil {
			r.filter = *filter
		}
		st.rels[relid] = r
	}
	if err := rows.Err(); err != nil {
		return nil, schema.WrapSQL(err, "reading the publication's tables")
	}
	if version >= 150000 {
		rows, err := tx.Query(ctx, `
SELECT format('%I', n.nspname) FROM pg_catalog.pg_publication_namespace pn
JOIN pg_catalog.pg_namespace n ON n.oid = pn.pnnspid
WHERE pn.pnpubid = $1 ORDER BY 1`, oid)
		if err != nil {
			return nil, schema.WrapSQL(err, "reading the publication's schemas")
		}
		if st.schemas, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return nil, schema.WrapSQL(err, "reading the publication's schemas")
		}
	}
	return &st, nil
}
