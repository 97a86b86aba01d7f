package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"pgveil/rules/refs"
	"pgveil/schema"
	"pgveil/transform"
)

// Foreign keys on the replica.
//
// Metabase offers automatic joins only along foreign keys, so the replica
// gets production's references back where they hold on the masked copy
// (PlanForeignKeys says which, and why the others are left out). They are
// DEFERRABLE INITIALLY DEFERRED and ON DELETE/UPDATE NO ACTION: the stream
// applies whole source transactions in one target transaction (batches
// end at source commit boundaries), so rows may arrive in any order inside
// it and are checked at COMMIT, when they are as consistent as production
// was at its commit. Production's own cascades arrive as row changes.
//
// They must never get in the way of replication:
//   - every path that empties or replaces tables (the initial copy, a
//     re-copy, partition maintenance) runs with the keys touching those
//     tables dropped (DropForeignKeys), and they are added back once the
//     copy is in (AddForeignKeys: ADD ... NOT VALID, then VALIDATE, each
//     key in a transaction of its own);
//   - a TRUNCATE of a referenced table whose referencing table is not
//     truncated with it drops the key in the same transaction (truncateSQL);
//   - a key the rows do not satisfy when it is added, or that a streamed
//     transaction violates (ViolatedKey), is left out, logged by name
//     (never a value) and recorded in pgveil.foreign_keys for status.

// ForeignKey is a reference recreated on the replica as a foreign key.
type ForeignKey struct {
	Name       string           // the constraint's name on the replica
	Table      schema.TableName // the referencing table
	Columns    []string
	RefTable   schema.TableName // the referenced table
	RefColumns []string
	Origin     refs.Origin
}

// String is "schema.table (cols) -> schema.table (cols)", for messages.
func (k ForeignKey) String() string {
	return k.Table.QualifiedName() + " (" + strings.Join(k.Columns, ", ") + ") -> " +
		k.RefTable.QualifiedName() + " (" + strings.Join(k.RefColumns, ", ") + ")"
}

func (k ForeignKey) id() string { return k.Table.QualifiedName() + "." + schema.QuoteIdent(k.Name) }

func (k ForeignKey) tableIdent() string {
	return schema.Qualified(k.Table.Schema, k.Table.Name)
}

func (k ForeignKey) addSQL() string {
	return `ALTER TABLE ` + k.tableIdent() + ` ADD CONSTRAINT ` + schema.QuoteIdent(k.Name) +
		` FOREIGN KEY (` + schema.QuoteIdents(k.Columns) + `) REFERENCES ` + schema.Qualified(k.RefTable.Schema, k.RefTable.Name) +
		` (` + schema.QuoteIdents(k.RefColumns) + `) DEFERRABLE INITIALLY DEFERRED NOT VALID`
}

func (k ForeignKey) validateSQL() string {
	return `ALTER TABLE ` + k.tableIdent() + ` VALIDATE CONSTRAINT ` + schema.QuoteIdent(k.Name)
}

func (k ForeignKey) dropSQL() string {
	return `ALTER TABLE ` + k.tableIdent() + ` DROP CONSTRAINT IF EXISTS ` + schema.QuoteIdent(k.Name)
}

// same reports whether two keys have the same definition.
func (k ForeignKey) same(o ForeignKey) bool {
	return k.Name == o.Name && k.Table == o.Table && k.RefTable == o.RefTable &&
		slices.Equal(k.Columns, o.Columns) && slices.Equal(k.RefColumns, o.RefColumns)
}

// LeftOut is a reference the replica does not get as a foreign key.
type LeftOut struct {
	Key    ForeignKey // Name is the one it would have had
	Reason string     // names tables, columns and rules; never a value
}

// ForeignKeys are the replica's foreign keys: those it should have, and
// the references left out with their reasons. Its methods are safe for
// concurrent use.
type ForeignKeys struct {
	// Log is told what is dropped, added and left out (nil: discarded).
	Log *slog.Logger

	mu      sync.Mutex
	keys    []ForeignKey
	leftOut []LeftOut
}

// Keys returns the keys the replica should have.
func (f *ForeignKeys) Keys() []ForeignKey {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.keys)
}

// LeftOut returns the references left out, with why.
func (f *ForeignKeys) LeftOut() []LeftOut {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.leftOut)
}

func (f *ForeignKeys) log() *slog.Logger {
	if f == nil || f.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Log
}

// leaveOut moves the key with k's id from the keys to the left-out ones.
func (f *ForeignKeys) leaveOut(k ForeignKey, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = slices.DeleteFunc(f.keys, func(x ForeignKey) bool { return x.id() == k.id() })
	for i := range f.leftOut {
		if f.leftOut[i].Key.id() == k.id() {
			f.leftOut[i].Reason = reason
			return
		}
	}
	f.leftOut = append(f.leftOut, LeftOut{Key: k, Reason: reason})
}

// Exclude leaves out the keys named in broken (by BrokenID), with the
// reason recorded there: keys a streamed transaction violated are not
// added again by the same process, which would only meet the same
// transaction again.
func (f *ForeignKeys) Exclude(broken map[string]string) {
	for _, k := range f.Keys() {
		if why, ok := broken[k.id()]; ok {
			f.leaveOut(k, why)
		}
	}
}

// BrokenID names k in the map Exclude reads.
func BrokenID(k ForeignKey) string { return k.id() }

// PlanForeignKeys decides which references of m the replica of plan gets
// as foreign keys: foreign keys declared in production (on tables, on
// partitions lifted to their root) and references declared in the rules;
// never inferred ones, which no constraint or person vouches for. A
// reference from a replicated table is left out, with the reason, when
//   - the referenced table or a column of either side is not replicated;
//   - the referenced columns are not the replica's key of their table;
//   - the referenced table has a where: rows it leaves out may be
//     referenced by kept rows (a where on the referencing table is fine:
//     it only keeps fewer of them);
//   - the two sides are masked differently: a reference holds on the
//     replica only when both columns go through the same rule with the
//     same parameters (or are both kept), and, unless kept, have the same
//     type (a hash's output depends on it).
//
// References from tables the rules do not replicate are not about the
// replica and are ignored.
func PlanForeignKeys(m *refs.Model, plan *transform.Plan) *ForeignKeys {
	f := &ForeignKeys{}
	if m == nil || plan == nil {
		return f
	}
	type group struct {
		key        ForeignKey
		constraint string
	}
	var groups []*group
	find := map[string]*group{}
	for _, r := range m.Refs {
		switch r.Origin {
		case refs.Declared, refs.Partition, refs.Rules:
		default:
			continue
		}
		gid := r.From.Table.QualifiedName() + "\x00" + r.To.Table.QualifiedName() + "\x00"
		if r.Constraint != "" {
			gid += "c\x00" + r.Constraint
		} else {
			gid += "r\x00" + r.From.Name
		}
		g := find[gid]
		if g == nil {
			g = &group{key: ForeignKey{Table: r.From.Table, RefTable: r.To.Table, Origin: r.Origin}, constraint: r.Constraint}
			find[gid] = g
			groups = append(groups, g)
		}
		g.key.Columns = append(g.key.Columns, r.From.Name)
		g.key.RefColumns = append(g.key.RefColumns, r.To.Name)
	}
	// Names: production's for a declared key, PostgreSQL's own pattern
	// for the others; unique within each table.
	used := map[schema.TableName]map[string]bool{}
	for _, declared := range []bool{true, false} {
		for _, g := range groups {
			if (g.key.Origin == refs.Declared) != declared {
				continue
			}
			base := g.constraint
			if g.key.Origin != refs.Declared || base == "" {
				base = g.key.Table.Name + "_" + strings.Join(g.key.Columns, "_") + "_fkey"
			}
			if used[g.key.Table] == nil {
				used[g.key.Table] = map[string]bool{}
			}
			name := truncateName(base, "")
			for i := 1; used[g.key.Table][name]; i++ {
				name = truncateName(base, strconv.Itoa(i))
			}
			used[g.key.Table][name] = true
			g.key.Name = name
		}
	}
	for _, g := range groups {
		k := g.key
		child := plan.Table(k.Table.Schema, k.Table.Name)
		if child == nil {
			continue
		}
		if why := holds(k, child, plan.Table(k.RefTable.Schema, k.RefTable.Name)); why != "" {
			f.leftOut = append(f.leftOut, LeftOut{Key: k, Reason: why})
			continue
		}
		f.keys = append(f.keys, k)
	}
	return f
}

// truncateName keeps a name within PostgreSQL's 63 bytes, with suffix.
func truncateName(base, suffix string) string {
	const max = 63
	if len(base)+len(suffix) <= max {
		return base + suffix
	}
	b := base[:max-len(suffix)]
	for len(b) > 0 && !utf8.ValidString(b) {
		b = b[:len(b)-1]
	}
	return b + suffix
}

// holds returns why k cannot be a foreign key of the replica, "" when it can.
func holds(k ForeignKey, child, parent *transform.TablePlan) string {
	if parent == nil {
		return "the referenced table " + k.RefTable.QualifiedName() + " is not replicated"
	}
	col := func(t *transform.TablePlan, name string) *transform.ColumnPlan {
		for i := range t.Columns {
			if t.Columns[i].Column.Name == name {
				return &t.Columns[i]
			}
		}
		return nil
	}
	var key []string
	for _, c := range parent.Columns {
		if c.Column.PrimaryKey {
			key = append(key, c.Column.Name)
		}
	}
	for i, name := range k.Columns {
		from := col(child, name)
		if from == nil {
			if slices.Contains(child.Dropped, name) {
				return fmt.Sprintf("the column %s.%s is dropped by the rules", k.Table.QualifiedName(), schema.QuoteIdent(name))
			}
			return fmt.Sprintf("the column %s.%s is not replicated", k.Table.QualifiedName(), schema.QuoteIdent(name))
		}
		to := col(parent, k.RefColumns[i])
		if to == nil {
			return fmt.Sprintf("the referenced column %s.%s is not replicated", k.RefTable.QualifiedName(), schema.QuoteIdent(k.RefColumns[i]))
		}
		if !transform.SameMasking(from.Rule, to.Rule) {
			return fmt.Sprintf("%s.%s is masked with %s and the key %s.%s with %s: their values would not match (give both the same rule)",
				k.Table.QualifiedName(), schema.QuoteIdent(name), from.Rule.Short(), k.RefTable.QualifiedName(), schema.QuoteIdent(k.RefColumns[i]), to.Rule.Short())
		}
		if from.Rule.Name != "keep" && from.Column.Type.String() != to.Column.Type.String() {
			return fmt.Sprintf("%s.%s is %s and the key %s.%s is %s: %s gives different values for different types",
				k.Table.QualifiedName(), schema.QuoteIdent(name), from.Column.Type, k.RefTable.QualifiedName(), schema.QuoteIdent(k.RefColumns[i]), to.Column.Type, from.Rule.Short())
		}
	}
	if len(key) == 0 {
		return "the referenced table " + k.RefTable.QualifiedName() + " has no key on the replica"
	}
	if !sameSet(key, k.RefColumns) {
		return fmt.Sprintf("the replica's key of %s is (%s), not the referenced columns (%s)", k.RefTable.QualifiedName(), strings.Join(key, ", "), strings.Join(k.RefColumns, ", "))
	}
	if parent.Where != "" {
		return "the referenced table " + k.RefTable.QualifiedName() + " has a where: rows it leaves out may be referenced by rows of " + k.Table.QualifiedName() + " the replica keeps"
	}
	return ""
}

// presentKey is a foreign key found on the target.
type presentKey struct {
	ForeignKey
	deferred, valid bool
}

// readForeignKeys reads the foreign keys whose referencing or referenced
// table is one of tables.
func readForeignKeys(ctx context.Context, q querier, tables []schema.TableName) ([]presentKey, error) {
	schemas, names := make([]string, len(tables)), make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Name
	}
	rows, err := q.Query(ctx, `WITH t AS (SELECT c.oid FROM unnest($1::text[], $2::text[]) u(s, r)
  JOIN pg_catalog.pg_namespace n ON n.nspname = u.s JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = u.r)
SELECT n.nspname::text, c.relname::text, k.conname::text,
  array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, i) JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
  fn.nspname::text, f.relname::text,
  array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, i) JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i),
  k.condeferrable AND k.condeferred, k.convalidated
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class f ON f.oid = k.confrelid JOIN pg_catalog.pg_namespace fn ON fn.oid = f.relnamespace
WHERE k.contype = 'f' AND k.conparentid = 0 AND (k.conrelid IN (SELECT oid FROM t) OR k.confrelid IN (SELECT oid FROM t))
ORDER BY 1, 2, 3`, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("reading the replica's foreign keys: %w", sanitize(err))
	}
	var out []presentKey
	var k presentKey
	_, err = pgx.ForEachRow(rows, []any{&k.Table.Schema, &k.Table.Name, &k.Name, &k.Columns, &k.RefTable.Schema, &k.RefTable.Name, &k.RefColumns, &k.deferred, &k.valid}, func() error {
		out = append(out, k)
		k = presentKey{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the replica's foreign keys: %w", sanitize(err))
	}
	return out, nil
}

// inTx runs stmts in one transaction on conn, each lock waiting at most
// lockTimeout.
func inTx(ctx context.Context, conn *pgx.Conn, stmts ...string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+lockTimeout+`'`); err != nil {
			return sanitize(err)
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return sanitize(err)
			}
		}
		return nil
	})
}

// DropForeignKeys drops, before anything replaces or reshapes the
// replica's tables, the foreign keys touching the tables of plan that
// f does not list as they are (gone from production, rules changed, a
// side no longer replicated or keyed as it was: Setup could not drop the
// key or a column they depend on), and those touching a table of recopy
// (a re-copy truncates or replaces it); every one when all is set (the
// initial copy truncates every table). conn must not be in a transaction.
func DropForeignKeys(ctx context.Context, conn *pgx.Conn, f *ForeignKeys, plan *transform.Plan, recopy map[schema.TableName]bool, all bool) error {
	var tables []schema.TableName
	for _, t := range plan.Tables() {
		tables = append(tables, schema.TableName{Schema: t.Table.Schema, Name: t.Table.Name})
	}
	present, err := readForeignKeys(ctx, conn, tables)
	if err != nil {
		return err
	}
	want := f.Keys()
	for _, p := range present {
		keep := !all && !recopy[p.Table] && !recopy[p.RefTable] && p.deferred && p.valid &&
			slices.ContainsFunc(want, func(k ForeignKey) bool { return k.same(p.ForeignKey) })
		if keep {
			continue
		}
		if err := inTx(ctx, conn, p.dropSQL()); err != nil {
			return fmt.Errorf("dropping foreign key %s on %s before the tables are set up or copied: %w", p.Name, p.Table.QualifiedName(), err)
		}
		why := "it is not wanted as it is"
		if all || recopy[p.Table] || recopy[p.RefTable] {
			why = "a table it joins is copied again"
		}
		f.log().Info("foreign key dropped from the replica", "key", p.Name, "reference", p.String(), "why", why)
	}
	return nil
}

// AddForeignKeys adds the keys of f the replica lacks, except those
// touching a table of skip (still to be copied); each in a transaction of
// its own: ADD CONSTRAINT ... NOT VALID (brief locks), then VALIDATE
// CONSTRAINT (reads the rows). A key the rows do not satisfy, or that the
// server refuses, is left out, logged by name and recorded; the others
// are not held back by it. It then records every key's state in
// pgveil.foreign_keys. Only a failure of the connection, or a lock not
// granted in time, is returned. conn must not be in a transaction.
func AddForeignKeys(ctx context.Context, conn *pgx.Conn, f *ForeignKeys, skip map[schema.TableName]bool) error {
	if f == nil {
		return nil
	}
	var tables []schema.TableName
	for _, k := range f.Keys() {
		tables = append(tables, k.Table, k.RefTable)
	}
	present, err := readForeignKeys(ctx, conn, tables)
	if err != nil {
		return err
	}
	for _, k := range f.Keys() {
		if skip[k.Table] || skip[k.RefTable] || slices.ContainsFunc(present, func(p presentKey) bool { return p.same(k) }) {
			continue
		}
		err := inTx(ctx, conn, k.addSQL(), k.validateSQL())
		var se *ServerError
		switch {
		case err == nil:
			f.log().Info("foreign key added to the replica", "key", k.Name, "reference", k.String(), "origin", k.Origin.String())
			continue
		case !errors.As(err, &se) || se.Code == schema.CodeLockNotAvailable || se.Code == "53300" || strings.HasPrefix(se.Code, "08") || strings.HasPrefix(se.Code, "40") || strings.HasPrefix(se.Code, "57"):
			return fmt.Errorf("adding foreign key %s on %s: %w", k.Name, k.Table.QualifiedName(), err)
		}
		why := "the replica refused it: " + se.Error()
		if se.Code == "23503" {
			why = "rows of " + k.Table.QualifiedName() + " reference keys " + k.RefTable.QualifiedName() + " does not hold (production's constraint is NOT VALID, a declared reference production does not enforce, or a table not yet caught up)"
		}
		f.leaveOut(k, why)
		f.log().Warn("foreign key left out of the replica: replication goes on without it", "key", k.Name, "reference", k.String(), "why", why)
	}
	return RecordForeignKeys(ctx, conn, f)
}

// foreignKeysTable holds the replica's foreign keys and the references
// left out, for status.
const foreignKeysTable = `pgveil.foreign_keys`

// RecordForeignKeys writes f to pgveil.foreign_keys: a row per key
// ('present' when the replica has it, else 'pending': a table it joins is
// being copied) and per reference left out, with the reason.
func RecordForeignKeys(ctx context.Context, conn *pgx.Conn, f *ForeignKeys) error {
	keys, leftOut := f.Keys(), f.LeftOut()
	var tables []schema.TableName
	for _, k := range keys {
		tables = append(tables, k.Table, k.RefTable)
	}
	present, err := readForeignKeys(ctx, conn, tables)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+foreignKeysTable+` (schema_name text, table_name text, name text,
reference text, origin text, state text, reason text, updated_at timestamptz, PRIMARY KEY (schema_name, table_name, name))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM `+foreignKeysTable); err != nil {
			return err
		}
		ins := `INSERT INTO ` + foreignKeysTable + ` VALUES ($1, $2, $3, $4, $5, $6, $7, now()) ON CONFLICT DO NOTHING`
		for _, k := range keys {
			state := "pending"
			if slices.ContainsFunc(present, func(p presentKey) bool { return p.same(k) }) {
				state = "present"
			}
			if _, err := tx.Exec(ctx, ins, k.Table.Schema, k.Table.Name, k.Name, k.String(), k.Origin.String(), state, ""); err != nil {
				return err
			}
		}
		for _, l := range leftOut {
			if _, err := tx.Exec(ctx, ins, l.Key.Table.Schema, l.Key.Table.Name, l.Key.Name, l.Key.String(), l.Key.Origin.String(), "left out", l.Reason); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording the replica's foreign keys in %s: %w", foreignKeysTable, sanitize(err))
	}
	return nil
}

// KeyState is a row of pgveil.foreign_keys.
type KeyState struct {
	Table     string `json:"table"`
	Name      string `json:"name"`
	Reference string `json:"reference"`
	Origin    string `json:"origin"`
	State     string `json:"state"` // present, pending, left out
	Reason    string `json:"reason,omitempty"`
}

// ReadForeignKeys reads pgveil.foreign_keys (nothing before pgveil
// recorded any).
func ReadForeignKeys(ctx context.Context, conn *pgx.Conn) ([]KeyState, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('`+foreignKeysTable+`') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", foreignKeysTable, sanitize(err))
		}
		return nil, nil
	}
	rows, err := conn.Query(ctx, `SELECT schema_name, table_name, name, reference, origin, state, coalesce(reason, '')
FROM `+foreignKeysTable+` ORDER BY state DESC, schema_name, table_name, name`)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", foreignKeysTable, sanitize(err))
	}
	var out []KeyState
	var s KeyState
	var schemaName, table string
	_, err = pgx.ForEachRow(rows, []any{&schemaName, &table, &s.Name, &s.Reference, &s.Origin, &s.State, &s.Reason}, func() error {
		s.Table = schema.TableName{Schema: schemaName, Name: table}.QualifiedName()
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", foreignKeysTable, sanitize(err))
	}
	return out, nil
}

// ViolatedKey returns the key of f that err (a failed commit) says a
// streamed transaction violated: production let rows through that break
// it (a reference the rules declare and production does not enforce, or
// a constraint production dropped or never validated).
func (f *ForeignKeys) ViolatedKey(err error) (ForeignKey, bool) {
	var se *ServerError
	if f == nil || !errors.As(err, &se) || se.Code != "23503" || se.Constraint == "" {
		return ForeignKey{}, false
	}
	for _, k := range f.Keys() {
		on := schema.TableName{Schema: se.Schema, Name: se.Table}
		if k.Name == se.Constraint && (on == k.Table || on == k.RefTable) {
			return k, true
		}
	}
	return ForeignKey{}, false
}

// LeaveOutViolated drops k, which a streamed transaction violated, from
// the replica, records it as left out and returns the reason. Replication
// then restarts at its checkpoint and applies the transaction without it.
func LeaveOutViolated(ctx context.Context, conn *pgx.Conn, f *ForeignKeys, k ForeignKey) (string, error) {
	why := "a transaction of production broke it on the replica (a row referenced a key " + k.RefTable.QualifiedName() +
		" does not hold): left out until pgveil restarts, which tries it again"
	if err := inTx(ctx, conn, k.dropSQL()); err != nil {
		return "", fmt.Errorf("dropping foreign key %s on %s, which production's rows break: %w", k.Name, k.Table.QualifiedName(), err)
	}
	f.leaveOut(k, why)
	f.log().Error("foreign key left out of the replica: production's changes break it; replication restarts at its checkpoint without it",
		"key", k.Name, "reference", k.String())
	return why, RecordForeignKeys(ctx, conn, f)
}

// truncateSQL returns the statements that must precede a TRUNCATE of
// tables in the same transaction, and those that follow it.
//
// PostgreSQL refuses to TRUNCATE (or ALTER) a table with pending trigger
// events, which the deferred keys' checks of the rows written earlier in
// the transaction are: SET CONSTRAINTS ALL IMMEDIATE runs them first (the
// rows before the TRUNCATE are as consistent as production was after its
// previous statement), and the keys are deferred again after it.
//
// PostgreSQL also refuses to truncate a referenced table unless every
// table referencing it is truncated too, even when no row references it.
// Production may do so (a reference it does not enforce, or under
// publish_via_partition_root, which publishes no TRUNCATE of the
// partitions a CASCADE reached): the key is dropped, recorded as left
// out, and tried again at the next start or re-copy.
func (f *ForeignKeys) truncateSQL(tables []schema.TableName) (before, after []string) {
	for _, k := range f.Keys() {
		if !slices.Contains(tables, k.RefTable) && !slices.Contains(tables, k.Table) {
			continue
		}
		if before == nil {
			before, after = []string{`SET CONSTRAINTS ALL IMMEDIATE`}, []string{`SET CONSTRAINTS ALL DEFERRED`}
		}
		if slices.Contains(tables, k.Table) {
			continue
		}
		f.log().Warn("production truncated a referenced table without the table referencing it: the foreign key is dropped with it and added back at the next start or re-copy",
			"key", k.Name, "reference", k.String())
		before = append(before, k.dropSQL(),
			`UPDATE `+foreignKeysTable+` SET state = 'left out', reason = `+schema.QuoteLiteral("production truncated "+k.RefTable.QualifiedName()+" without "+k.Table.QualifiedName()+": added back at the next start or re-copy")+
				`, updated_at = now() WHERE schema_name = `+schema.QuoteLiteral(k.Table.Schema)+` AND table_name = `+schema.QuoteLiteral(k.Table.Name)+` AND name = `+schema.QuoteLiteral(k.Name))
	}
	return before, after
}

// SetForeignKeys tells the Applier the replica's foreign keys, so that a
// TRUNCATE of a referenced table alone drops the key first.
func (a *Applier) SetForeignKeys(f *ForeignKeys) { a.fkeys = f }

// AddForeignKeys adds the keys the replica lacks (AddForeignKeys) on the
// Applier's connection, between transactions: after a re-copy is switched
// in, the keys of the tables it replaced come back.
func (a *Applier) AddForeignKeys(ctx context.Context) error {
	if a.fkeys == nil {
		return nil
	}
	if a.inTx {
		return errors.New("adding foreign keys: a transaction is open")
	}
	return AddForeignKeys(ctx, a.conn, a.fkeys, nil)
}
