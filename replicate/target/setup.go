package target

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
	"pgveil/transform"
)

// Setup creates or updates the target's schema, in one transaction:
//
//   - the internal schema "pgveil" with pgveil.checkpoint and
//     pgveil.tables, usable by its owner only (REVOKE ALL ... FROM PUBLIC,
//     and from anyone else who was granted something there);
//   - the enum types of enums, which maps a type name as columns spell it
//     ("public.mood", or unqualified: then it goes in the first schema of
//     the search path, as the columns find it) to its labels in order.
//     Labels missing from an existing type are added first, each with
//     ALTER TYPE ... ADD VALUE in its own transaction (older servers refuse
//     it in a transaction block), at the label's place in the order. Labels
//     the source no longer has are kept: PostgreSQL cannot drop them;
//   - each plan table's schema and the table: the published columns in
//     order with their source types, and a primary key on the key columns
//     when there are any; nothing else (no NOT NULL outside the key, no
//     default, no foreign or unique key). An existing table is brought in
//     line: missing columns are added (at the end, holding NULL in the
//     existing rows: the table is then marked StateAltered in
//     pgveil.tables), columns no longer published are dropped, the primary
//     key is rebuilt when the key columns changed, and NOT NULL is dropped
//     from columns outside the key. A column whose type differs is a
//     *ColumnTypeError: the table needs a resync. All of them are reported
//     at once, and nothing is changed. A new table is marked StateCreated.
//     Tables the plan no longer holds are left as they are.
//   - for each reader role: USAGE on each replicated schema, SELECT on each
//     replicated table (any INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES or
//     TRIGGER privilege granted to it there is revoked), and SELECT on the
//     tables created later in those schemas by the current role (ALTER
//     DEFAULT PRIVILEGES). A role that does not exist, or that can use
//     schema pgveil anyway (a superuser, or a member of its owner), is an
//     error;
//   - with readers, what lets a role create something is taken from
//     PUBLIC and from the readers, as far as the current role may:
//     CREATE and TEMPORARY on the database (its owner), CREATE on the
//     schemas it owns, and, as a superuser, EXECUTE on the functions that
//     write large objects and WAL messages (WriteFunctions); as a
//     superuser it also takes the per-table counters from PUBLIC
//     (RelationStatsWhere). A reader that can still create something is
//     an error naming what to revoke (readers.go).
//
// Every statement waits at most 10 s for a lock. Setup issues only the
// statements that change something, so running it again with the same
// arguments changes nothing. conn must not be in a transaction.
func Setup(ctx context.Context, conn *pgx.Conn, plan *transform.Plan, enums map[string][]string, readers []string) error {
	if conn == nil || plan == nil {
		return errors.New("setup: nil connection or plan")
	}
	if st := conn.PgConn().TxStatus(); st != 'I' {
		return fmt.Errorf("setup: the connection is in a transaction (status %c)", st)
	}
	if v := conn.PgConn().ParameterStatus("standard_conforming_strings"); v != "on" {
		// Enum labels are written as string literals.
		return fmt.Errorf("setup: standard_conforming_strings is %q on the target; it must be on", v)
	}
	if err := checkPlan(plan); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	roles, err := lookupReaders(ctx, conn, readers)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	types, err := parseEnums(enums)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if err := addEnumLabels(ctx, conn, types); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var creates *CreatesError
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		s := &setup{ctx: ctx, tx: tx, plan: plan, enums: types, roles: roles}
		err := s.run()
		if errors.As(err, &creates) {
			return nil // commit the rest; reported below
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if creates != nil {
		return fmt.Errorf("setup: %w", creates)
	}
	return nil
}

// checkPlan rejects plans Setup cannot create.
func checkPlan(plan *transform.Plan) error {
	var errs []error
	for _, t := range plan.Tables() {
		if t == nil || t.Table == nil {
			errs = append(errs, errors.New("the plan holds a nil table"))
			continue
		}
		if t.Table.Schema == InternalSchema {
			errs = append(errs, fmt.Errorf("table %s: schema %s is pgveil's own and cannot be replicated", tableLabel(t), InternalSchema))
		}
		seen := map[string]bool{}
		for _, c := range t.Columns {
			if c.Column.Type.Name == "" {
				errs = append(errs, fmt.Errorf("table %s column %s has no type", tableLabel(t), c.Column.Name))
			}
			if seen[c.Column.Name] {
				errs = append(errs, fmt.Errorf("table %s has two columns named %s", tableLabel(t), c.Column.Name))
			}
			seen[c.Column.Name] = true
		}
	}
	return errors.Join(errs...)
}

// role is a reader role.
type role struct {
	name  string
	oid   uint32
	super bool
}

// lookupReaders finds the reader roles, each of which must exist.
func lookupReaders(ctx context.Context, conn *pgx.Conn, readers []string) ([]role, error) {
	var names []string
	for _, r := range readers {
		if r == "" {
			return nil, errors.New("empty reader role name")
		}
		if !slices.Contains(names, r) {
			names = append(names, r)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `SELECT rolname, oid, rolsuper FROM pg_roles WHERE rolname = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("looking up the reader roles: %w", sanitize(err))
	}
	found := map[string]role{}
	for rows.Next() {
		var r role
		if err := rows.Scan(&r.name, &r.oid, &r.super); err != nil {
			rows.Close()
			return nil, fmt.Errorf("looking up the reader roles: %w", sanitize(err))
		}
		found[r.name] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up the reader roles: %w", sanitize(err))
	}
	var out []role
	var errs []error
	for _, n := range names {
		r, ok := found[n]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("reader role %s does not exist on the target: create it first, e.g. CREATE ROLE %s LOGIN PASSWORD '...'",
				n, schema.QuoteIdent(n)))
		case r.super:
			errs = append(errs, fmt.Errorf("reader role %s is a superuser: it could read schema %s and write every table; use a role without SUPERUSER", n, InternalSchema))
		default:
			out = append(out, r)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// enumType is an enum the replica needs.
type enumType struct {
	key    string // as given
	schema string // "" when unqualified
	name   string
	labels []string
}

// ident is the type's name, quoted for SQL.
func (e *enumType) ident() string {
	if e.schema == "" {
		return schema.QuoteIdent(e.name)
	}
	return schema.Qualified(e.schema, e.name)
}

// parseEnums checks the enum names and orders them by name.
func parseEnums(enums map[string][]string) ([]*enumType, error) {
	var out []*enumType
	var errs []error
	for key, labels := range enums {
		parts, err := parseQualifiedName(key)
		if err != nil {
			errs = append(errs, fmt.Errorf("enum type %q: %w", key, err))
			continue
		}
		e := &enumType{key: key, labels: labels}
		if len(parts) == 2 {
			e.schema, e.name = parts[0], parts[1]
		} else {
			e.name = parts[0]
		}
		seen := map[string]bool{}
		for _, l := range labels {
			if seen[l] {
				errs = append(errs, fmt.Errorf("enum type %s: label %q appears twice", key, l))
			}
			seen[l] = true
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, errors.Join(errs...)
}

// parseQualifiedName splits a possibly schema-qualified SQL name into its
// one or two parts, as PostgreSQL reads it: unquoted parts are folded to
// lower case, quoted ones are taken as they are.
func parseQualifiedName(s string) ([]string, error) {
	var parts []string
	i := 0
	for {
		var part string
		if i < len(s) && s[i] == '"' {
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, errors.New("unterminated quoted identifier")
				}
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					j++
					break
				}
				b.WriteByte(s[j])
				j++
			}
			part, i = b.String(), j
			if part == "" {
				return nil, errors.New("empty quoted identifier")
			}
		} else {
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '"' {
				j++
			}
			part, i = asciiLower(strings.TrimSpace(s[i:j])), j
			if part == "" {
				return nil, errors.New("empty name")
			}
		}
		parts = append(parts, part)
		if i == len(s) {
			break
		}
		if s[i] != '.' {
			return nil, errors.New("bad name")
		}
		i++
	}
	if len(parts) > 2 {
		return nil, errors.New("too many dotted parts (want schema.name or name)")
	}
	return parts, nil
}

// asciiLower folds ASCII letters only, as PostgreSQL does with unquoted
// identifiers.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// readEnum returns the labels of an existing enum, in order, and
// exists=false when there is no such type.
func readEnum(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, e *enumType) (labels []string, exists bool, err error) {
	var typtype string
	err = q.QueryRow(ctx, `SELECT t.typtype::text, coalesce(array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FILTER (WHERE e.enumlabel IS NOT NULL), '{}')
FROM pg_type t LEFT JOIN pg_enum e ON e.enumtypid = t.oid WHERE t.oid = to_regtype($1) GROUP BY t.typtype`, e.ident()).Scan(&typtype, &labels)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading enum type %s: %w", e.key, sanitize(err))
	}
	if typtype != "e" {
		return nil, false, fmt.Errorf("type %s exists on the target and is not an enum", e.key)
	}
	return labels, true, nil
}

// addEnumLabels adds the labels missing from existing enum types, outside
// any transaction block, each where it belongs in the order.
func addEnumLabels(ctx context.Context, conn *pgx.Conn, types []*enumType) (err error) {
	var stmts []string
	for _, e := range types {
		have, exists, err := readEnum(ctx, conn, e)
		if err != nil {
			return err
		}
		if !exists {
			continue // created in the transaction
		}
		for i, l := range e.labels {
			if slices.Contains(have, l) {
				continue
			}
			stmt := "ALTER TYPE " + e.ident() + " ADD VALUE " + schema.QuoteLiteral(l)
			switch {
			case i > 0: // the previous label exists by now
				stmt += " AFTER " + schema.QuoteLiteral(e.labels[i-1])
				j := slices.Index(have, e.labels[i-1])
				have = slices.Insert(have, j+1, l)
			case len(have) > 0:
				stmt += " BEFORE " + schema.QuoteLiteral(have[0])
				have = slices.Insert(have, 0, l)
			default:
				have = append(have, l)
			}
			stmts = append(stmts, stmt)
		}
	}
	if len(stmts) == 0 {
		return nil
	}
	var prev string
	if err := conn.QueryRow(ctx, `SELECT current_setting('lock_timeout')`).Scan(&prev); err != nil {
		return fmt.Errorf("reading lock_timeout: %w", sanitize(err))
	}
	if _, err := conn.Exec(ctx, `SELECT set_config('lock_timeout', $1, false)`, lockTimeout); err != nil {
		return fmt.Errorf("setting lock_timeout: %w", sanitize(err))
	}
	defer func() {
		if _, rerr := conn.Exec(ctx, `SELECT set_config('lock_timeout', $1, false)`, prev); rerr != nil && err == nil {
			err = fmt.Errorf("restoring lock_timeout: %w", sanitize(rerr))
		}
	}()
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, sanitize(err))
		}
	}
	return nil
}

// setup is the state of Setup's transaction.
type setup struct {
	ctx   context.Context
	tx    pgx.Tx
	plan  *transform.Plan
	enums []*enumType
	roles []role
}

func (s *setup) exec(sql string, args ...any) error {
	if _, err := s.tx.Exec(s.ctx, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", sql, sanitize(err))
	}
	return nil
}

// strings returns the first column of a query's rows.
func (s *setup) strings(sql string, args ...any) ([]string, error) {
	return queryStrings(s.ctx, s.tx, sql, args...)
}

// querier runs queries: a pgx.Tx or a *pgx.Conn.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryStrings returns the first column of a catalog query's rows.
func queryStrings(ctx context.Context, q querier, sql string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("querying the catalog: %w", sanitize(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("querying the catalog: %w", sanitize(err))
	}
	return out, nil
}

func (s *setup) run() error {
	if err := s.exec(`SET LOCAL lock_timeout = '` + lockTimeout + `'`); err != nil {
		return err
	}
	if err := s.internal(); err != nil {
		return err
	}
	if err := s.schemas(); err != nil {
		return err
	}
	for _, e := range s.enums {
		if err := s.createEnum(e); err != nil {
			return err
		}
	}
	var errs []error
	for _, t := range s.plan.Tables() {
		if err := s.table(t); err != nil {
			var cte *ColumnTypeError
			if !errors.As(err, &cte) {
				return err
			}
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.grants()
}

// internal creates schema pgveil and its tables, and takes every privilege
// there away from everyone but the owner.
func (s *setup) internal() error {
	have, err := s.strings(`SELECT nspname::text FROM pg_namespace WHERE nspname = $1`, InternalSchema)
	if err != nil {
		return err
	}
	schemaName := schema.QuoteIdent(InternalSchema)
	if len(have) == 0 {
		if err := s.exec(`CREATE SCHEMA ` + schemaName); err != nil {
			return err
		}
		if err := s.exec(`REVOKE ALL ON SCHEMA ` + schemaName + ` FROM PUBLIC`); err != nil {
			return err
		}
	}
	tables, err := s.strings(`SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname IN ('checkpoint', 'tables')`, InternalSchema)
	if err != nil {
		return err
	}
	if !slices.Contains(tables, "checkpoint") {
		if err := s.exec(`CREATE TABLE pgveil.checkpoint (slot text PRIMARY KEY, lsn pg_lsn NOT NULL, commit_time timestamptz, updated_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
	}
	if !slices.Contains(tables, "tables") {
		if err := s.exec(`CREATE TABLE pgveil.tables (schema_name text, table_name text, state text, rows bigint, updated_at timestamptz, rules_hash text, tenant_roles text, partitions text, PRIMARY KEY (schema_name, table_name))`); err != nil {
			return err
		}
	} else {
		// Columns later versions added.
		have, err := s.strings(`SELECT attname::text FROM pg_attribute WHERE attrelid = 'pgveil.tables'::regclass AND attnum > 0 AND NOT attisdropped`)
		if err != nil {
			return err
		}
		for _, c := range []string{"rules_hash", "tenant_roles", "partitions"} {
			if !slices.Contains(have, c) {
				if err := s.exec(`ALTER TABLE pgveil.tables ADD COLUMN ` + c + ` text`); err != nil {
					return err
				}
			}
		}
	}
	// Everyone but the owner loses every privilege on the schema.
	grantees, err := s.strings(`SELECT DISTINCT CASE WHEN a.grantee = 0 THEN '' ELSE r.rolname::text END
FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE n.nspname = $1 AND a.grantee <> n.nspowner ORDER BY 1`, InternalSchema)
	if err != nil {
		return err
	}
	for _, g := range grantees {
		who := "PUBLIC"
		if g != "" {
			who = schema.QuoteIdent(g)
		}
		if err := s.exec(`REVOKE ALL ON SCHEMA ` + schemaName + ` FROM ` + who); err != nil {
			return err
		}
	}
	return nil
}

// replicatedSchemas are the schemas of the plan's tables, in plan order.
func (s *setup) replicatedSchemas() []string {
	var out []string
	for _, t := range s.plan.Tables() {
		if !slices.Contains(out, t.Table.Schema) {
			out = append(out, t.Table.Schema)
		}
	}
	return out
}

// schemas creates the missing schemas of tables and enum types.
func (s *setup) schemas() error {
	want := s.replicatedSchemas()
	for _, e := range s.enums {
		if e.schema != "" && !slices.Contains(want, e.schema) {
			want = append(want, e.schema)
		}
	}
	if len(want) == 0 {
		return nil
	}
	have, err := s.strings(`SELECT nspname::text FROM pg_namespace WHERE nspname = ANY($1)`, want)
	if err != nil {
		return err
	}
	for _, n := range want {
		if !slices.Contains(have, n) {
			if err := s.exec(`CREATE SCHEMA ` + schema.QuoteIdent(n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// createEnum creates an enum type that does not exist yet.
func (s *setup) createEnum(e *enumType) error {
	_, exists, err := readEnum(s.ctx, s.tx, e)
	if err != nil || exists {
		return err
	}
	quoted := make([]string, len(e.labels))
	for i, l := range e.labels {
		quoted[i] = schema.QuoteLiteral(l)
	}
	return s.exec(`CREATE TYPE ` + e.ident() + ` AS ENUM (` + strings.Join(quoted, ", ") + `)`)
}

// targetColumn is a column of an existing target table.
type targetColumn struct {
	name    string
	typOID  uint32
	typ     string // format_type
	notNull bool
}

// table creates t or brings the existing table in line with it.
func (s *setup) table(t *transform.TablePlan) error {
	name := tableIdent(t)
	var relOID uint32
	var relkind string
	err := s.tx.QueryRow(s.ctx, `SELECT c.oid, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, t.Table.Schema, t.Table.Name).Scan(&relOID, &relkind)
	if errors.Is(err, pgx.ErrNoRows) {
		if err := s.exec(createTableSQL(t)); err != nil {
			return err
		}
		return s.markTable(t, StateCreated)
	}
	if err != nil {
		return fmt.Errorf("reading table %s: %w", tableLabel(t), sanitize(err))
	}
	if relkind != "r" && relkind != "p" {
		return fmt.Errorf("%s exists on the target and is not a table (relkind %s)", tableLabel(t), relkind)
	}

	// The table as it is.
	rows, err := s.tx.Query(s.ctx, `SELECT attname::text, atttypid, format_type(atttypid, atttypmod), attnotnull
FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, relOID)
	if err != nil {
		return fmt.Errorf("reading table %s: %w", tableLabel(t), sanitize(err))
	}
	var cols []targetColumn
	for rows.Next() {
		var c targetColumn
		if err := rows.Scan(&c.name, &c.typOID, &c.typ, &c.notNull); err != nil {
			rows.Close()
			return fmt.Errorf("reading table %s: %w", tableLabel(t), sanitize(err))
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading table %s: %w", tableLabel(t), sanitize(err))
	}
	var pkName string
	var pkCols []string
	err = s.tx.QueryRow(s.ctx, `SELECT c.conname::text, array(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) ORDER BY a.attnum)
FROM pg_constraint c WHERE c.conrelid = $1 AND c.contype = 'p'`, relOID).Scan(&pkName, &pkCols)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("reading the primary key of %s: %w", tableLabel(t), sanitize(err))
	}

	// The types the plan wants, as the target resolves them.
	typeNames := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		typeNames[i] = c.Column.Type.String()
	}
	var oids []*uint32
	err = s.tx.QueryRow(s.ctx, `SELECT array(SELECT to_regtype(u.t)::oid FROM unnest($1::text[]) WITH ORDINALITY u(t, n) ORDER BY u.n)`, typeNames).Scan(&oids)
	if err != nil {
		return fmt.Errorf("resolving the column types of %s: %w", tableLabel(t), sanitize(err))
	}

	byName := map[string]*targetColumn{}
	for i := range cols {
		byName[cols[i].name] = &cols[i]
	}
	var wantKey []string
	var actions []string
	var typeErrs []error
	for i, c := range t.Columns {
		if c.Column.PrimaryKey {
			wantKey = append(wantKey, c.Column.Name)
		}
		old := byName[c.Column.Name]
		if old == nil {
			actions = append(actions, "ADD COLUMN "+schema.QuoteIdent(c.Column.Name)+" "+typeNames[i])
			continue
		}
		if oids[i] == nil {
			return fmt.Errorf("table %s column %s: type %s does not exist on the target", tableLabel(t), c.Column.Name, typeNames[i])
		}
		if !sameType(old.typOID, old.typ, *oids[i], c.Column.Type) {
			typeErrs = append(typeErrs, &ColumnTypeError{Table: tableLabel(t), Column: c.Column.Name, OldType: old.typ, NewType: typeNames[i]})
		}
	}
	if err := errors.Join(typeErrs...); err != nil {
		return err
	}
	added := len(actions) > 0
	var dropped []string
	for _, c := range cols {
		if !planHas(t, c.name) {
			dropped = append(dropped, c.name)
			actions = append(actions, "DROP COLUMN "+schema.QuoteIdent(c.name))
		}
	}
	keyChanged := !sameSet(pkCols, wantKey)
	if keyChanged && pkName != "" {
		// Dropped first: the new key may need columns the old one had.
		if err := s.exec(`ALTER TABLE ` + name + ` DROP CONSTRAINT ` + schema.QuoteIdent(pkName)); err != nil {
			return err
		}
	}
	// NOT NULL only through the primary key.
	for _, c := range cols {
		if c.notNull && !slices.Contains(wantKey, c.name) && !slices.Contains(dropped, c.name) {
			actions = append(actions, "ALTER COLUMN "+schema.QuoteIdent(c.name)+" DROP NOT NULL")
		}
	}
	if len(actions) > 0 {
		if err := s.exec(`ALTER TABLE ` + name + ` ` + strings.Join(actions, ", ")); err != nil {
			return err
		}
	}
	if keyChanged && len(wantKey) > 0 {
		if err := s.exec(`ALTER TABLE ` + name + ` ADD PRIMARY KEY (` + schema.QuoteIdents(wantKey) + `)`); err != nil {
			return err
		}
	}
	if added {
		return s.markTable(t, StateAltered)
	}
	return nil
}

// markTable records a table's state in pgveil.tables.
func (s *setup) markTable(t *transform.TablePlan, state string) error {
	rows := "NULL"
	if state == StateCreated {
		rows = "0"
	}
	return s.exec(`INSERT INTO pgveil.tables (schema_name, table_name, state, rows, updated_at) VALUES ($1, $2, $3, `+rows+`, now())
ON CONFLICT (schema_name, table_name) DO UPDATE SET state = EXCLUDED.state, rows = EXCLUDED.rows, updated_at = EXCLUDED.updated_at, tenant_roles = NULL`,
		t.Table.Schema, t.Table.Name, state)
}

// replicaStorage are the storage parameters of every replica table.
// toast_tuple_target = 8160 keeps a row inline until it fills a page: at
// the default (about 2 kB) a wide masked row is toasted value by value,
// and masked values (hashes, fakes) do not compress, so each one is moved
// out of line with a row and an index entry of its own in the TOAST
// table. A 200-column table cost the analytics server 317 µs a row that
// way against 20 with this setting, and took 240 MB against 78
// (BenchmarkWideRowToast, BENCHMARKS.md "Snapshot CPU"). The price: a
// row between 2 and 8 kB that would compress is stored whole.
const replicaStorage = " WITH (toast_tuple_target = 8160)"

// createTableSQL is the CREATE TABLE statement of t.
func createTableSQL(t *transform.TablePlan) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE ")
	b.WriteString(tableIdent(t))
	b.WriteString(" (")
	var key []string
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(schema.QuoteIdent(c.Column.Name))
		b.WriteByte(' ')
		b.WriteString(c.Column.Type.String())
		if c.Column.PrimaryKey {
			key = append(key, c.Column.Name)
		}
	}
	if len(key) > 0 {
		b.WriteString(", PRIMARY KEY (")
		b.WriteString(schema.QuoteIdents(key))
		b.WriteString(")")
	}
	b.WriteString(")")
	b.WriteString(replicaStorage)
	return b.String()
}

func planHas(t *transform.TablePlan, column string) bool {
	for i := range t.Columns {
		if t.Columns[i].Column.Name == column {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// sameType reports whether a target column of type oldOID (printed old by
// format_type) has the plan's type, whose OID on the target is newOID. The
// OIDs settle the type (array dimensions are not part of it, as in
// PostgreSQL); the modifiers come from the printed forms.
func sameType(oldOID uint32, old string, newOID uint32, want schema.Type) bool {
	if oldOID != newOID {
		return false
	}
	o, err := schema.ParseType(old)
	if err != nil {
		return old == want.String()
	}
	return o.Length == want.Length && o.Precision == want.Precision && o.Scale == want.Scale
}

// grants gives the reader roles read access to the replicated schemas and
// tables, and checks that they cannot use schema pgveil.
func (s *setup) grants() error {
	if len(s.roles) == 0 {
		return nil
	}
	schemas := s.replicatedSchemas()
	oids := make([]uint32, len(s.roles))
	for i, r := range s.roles {
		oids[i] = r.oid
	}
	if err := s.grantSchemaUsage(schemas, oids); err != nil {
		return err
	}
	if err := s.grantTables(schemas, oids); err != nil {
		return err
	}
	if err := s.grantDefaults(schemas, oids); err != nil {
		return err
	}
	// Guarantee 4: readers cannot use schema pgveil.
	names := make([]string, len(s.roles))
	for i, r := range s.roles {
		names[i] = r.name
	}
	leaky, err := s.strings(`SELECT r FROM unnest($1::text[]) r WHERE has_schema_privilege(r, $2, 'USAGE')`, names, InternalSchema)
	if err != nil {
		return err
	}
	if len(leaky) > 0 {
		return fmt.Errorf("reader roles %s can use schema %s (as members of its owner, or through another role): use roles that are not",
			strings.Join(leaky, ", "), InternalSchema)
	}
	// Nor can they create anything (readers.go).
	return lockDown(s.ctx, s.tx, names, nil)
}

// grant is a privilege's object (a schema, or schema.table, unquoted) and
// grantee, as the catalog's ACLs hold them.
type grant struct {
	object  string
	grantee uint32
}

// grantSchemaUsage grants USAGE on the replicated schemas to the readers
// (oids) that lack it.
func (s *setup) grantSchemaUsage(schemas []string, oids []uint32) error {
	usage := map[grant]bool{}
	rows, err := s.tx.Query(s.ctx, `SELECT n.nspname::text, a.grantee FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
WHERE n.nspname = ANY($1) AND a.grantee = ANY($2) AND a.privilege_type = 'USAGE'`, schemas, oids)
	if err != nil {
		return fmt.Errorf("reading schema privileges: %w", sanitize(err))
	}
	var g grant
	_, err = pgx.ForEachRow(rows, []any{&g.object, &g.grantee}, func() error { usage[g] = true; return nil })
	if err != nil {
		return fmt.Errorf("reading schema privileges: %w", sanitize(err))
	}
	for _, sch := range schemas {
		var to []string
		for _, r := range s.roles {
			if !usage[grant{sch, r.oid}] {
				to = append(to, r.name)
			}
		}
		if len(to) > 0 {
			if err := s.exec(`GRANT USAGE ON SCHEMA ` + schema.QuoteIdent(sch) + ` TO ` + schema.QuoteIdents(to)); err != nil {
				return err
			}
		}
	}
	return nil
}

// grantTables grants SELECT and REFERENCES (ReadPrivileges: keys visible
// to tools), and revokes anything more, on the replicated tables.
func (s *setup) grantTables(schemas []string, oids []uint32) error {
	privs := map[grant][]string{}
	var g grant
	var priv string
	rows, err := s.tx.Query(s.ctx, `SELECT n.nspname::text || '.' || c.relname::text, a.grantee, a.privilege_type
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(c.relacl) a
WHERE n.nspname = ANY($1) AND a.grantee = ANY($2)`, schemas, oids)
	if err != nil {
		return fmt.Errorf("reading table privileges: %w", sanitize(err))
	}
	_, err = pgx.ForEachRow(rows, []any{&g.object, &g.grantee, &priv}, func() error {
		privs[g] = append(privs[g], priv)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading table privileges: %w", sanitize(err))
	}
	for _, t := range s.plan.Tables() {
		obj := t.Table.Schema + "." + t.Table.Name
		var to []string
		for _, r := range s.roles {
			have := privs[grant{obj, r.oid}]
			if !slices.Contains(have, "SELECT") || !slices.Contains(have, "REFERENCES") {
				to = append(to, r.name)
			}
			var extra []string
			for _, p := range have {
				if !isReadPrivilege(p) {
					extra = append(extra, p)
				}
			}
			if len(extra) > 0 {
				sort.Strings(extra)
				if err := s.exec(`REVOKE ` + strings.Join(extra, ", ") + ` ON TABLE ` + tableIdent(t) + ` FROM ` + schema.QuoteIdent(r.name)); err != nil {
					return err
				}
			}
		}
		if len(to) > 0 {
			if err := s.exec(`GRANT ` + ReadPrivileges + ` ON TABLE ` + tableIdent(t) + ` TO ` + schema.QuoteIdents(to)); err != nil {
				return err
			}
		}
	}
	return nil
}

// grantDefaults makes the tables created later in the replicated schemas
// readable too: default privileges of SELECT and REFERENCES.
func (s *setup) grantDefaults(schemas []string, oids []uint32) error {
	defaults := map[grant]int{}
	var g grant
	rows, err := s.tx.Query(s.ctx, `SELECT n.nspname::text, a.grantee FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
CROSS JOIN LATERAL aclexplode(d.defaclacl) a
WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND d.defaclobjtype = 'r'
AND n.nspname = ANY($1) AND a.grantee = ANY($2) AND a.privilege_type IN ('SELECT', 'REFERENCES')`, schemas, oids)
	if err != nil {
		return fmt.Errorf("reading default privileges: %w", sanitize(err))
	}
	_, err = pgx.ForEachRow(rows, []any{&g.object, &g.grantee}, func() error { defaults[g]++; return nil })
	if err != nil {
		return fmt.Errorf("reading default privileges: %w", sanitize(err))
	}
	for _, sch := range schemas {
		var to []string
		for _, r := range s.roles {
			if defaults[grant{sch, r.oid}] < 2 {
				to = append(to, r.name)
			}
		}
		if len(to) > 0 {
			if err := s.exec(`ALTER DEFAULT PRIVILEGES IN SCHEMA ` + schema.QuoteIdent(sch) + ` GRANT ` + ReadPrivileges + ` ON TABLES TO ` + schema.QuoteIdents(to)); err != nil {
				return err
			}
		}
	}
	return nil
}
