package target

import (
	"context"
	"errors"
	"fmt"
	"pgveil/schema"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Guarantee 4: readers and tenant logins can create nothing. Privileges on
// tables and schemas are not enough for that on PostgreSQL 15: every role
// may execute, by default, functions that write to the database without
// any privilege on a table, in read-only transactions too (the server
// checks neither):
//
//   - the large object functions: lo_create, lo_from_bytea, lo_put and
//     lowrite wrote 5 MB as a reader in a READ ONLY transaction; a large
//     object outlives the session, and its owner may GRANT SELECT ON LARGE
//     OBJECT to PUBLIC: a channel from one tenant to the others;
//   - pg_logical_emit_message, which writes a message of any size to the
//     WAL (and to every logical decoding client of the replica's server).
//
// Only a superuser (their owner) may take them away, with REVOKE EXECUTE
// ... FROM PUBLIC: `pgveil setup-sql` does, and so does Setup when its
// role is a superuser. Setup then checks that no reader, and SetupTenancy
// that no tenant login, can create anything, and fails naming what is
// left otherwise.
//
// What PostgreSQL 15 offers no privilege against (docs/operations.md,
// "What readers and tenants can still do"): NOTIFY and LISTEN (a channel
// between sessions; pg_notify is the same statement as a function, so
// revoking it alone closes nothing), advisory locks (a channel, and
// pg_locks shows them to everyone), and session settings.

// ReadPrivileges are the table privileges readers, the tenant group and
// impersonators get on the tables they read: SELECT, and REFERENCES so
// that analytics tools see the tables' keys. PostgreSQL shows a table's
// constraints in information_schema.table_constraints only to roles with a
// privilege on the table other than SELECT (its owner aside), and
// Metabase's describe-fields finds primary keys there: with SELECT alone
// it marks no column as a key. REFERENCES is the one such privilege that
// neither writes nor reads: it lets its holder declare a foreign key to
// the table from a table it owns (CREATE TABLE or ALTER TABLE ... ADD
// FOREIGN KEY), and nothing else. A foreign key would be a probe past row
// level security (the checks of a foreign key read the referenced table
// as its owner, so inserting a key into one's own referencing table tells
// whether another tenant holds it), but a reader or tenant has no table to
// declare it on: it can create none (no CREATE on any schema or database,
// checkCreatesNothing), a temporary one may reference temporary tables
// only (SQLSTATE 42P16, even were TEMPORARY granted), and it owns none
// (checkCreatesNothing checks that too).
const ReadPrivileges = "SELECT, REFERENCES"

// isReadPrivilege reports whether the table privilege p (as aclexplode
// names it) is one of ReadPrivileges.
func isReadPrivilege(p string) bool { return p == "SELECT" || p == "REFERENCES" }

// WriteFunctions are the functions of pg_catalog with which a role writes
// to the database without a privilege on any table or schema (see above).
// PUBLIC may execute every one of them by default but lo_import, which
// reads the server's files.
var WriteFunctions = []string{
	"lo_creat(integer)", "lo_create(oid)", "lo_from_bytea(oid, bytea)", "lo_import(text)", "lo_import(text, oid)",
	"lo_put(oid, bigint, bytea)", "lowrite(integer, bytea)", "lo_truncate(integer, integer)", "lo_truncate64(integer, bigint)",
	"lo_unlink(oid)", "pg_logical_emit_message(boolean, text, text)", "pg_logical_emit_message(boolean, text, bytea)",
}

// RelationStatsWhere selects, in pg_proc p, the functions of the
// statistics system that count, for one table or index, exactly and as it
// happens, its rows (n_live_tup), inserts, updates, deletes, scans and
// block reads: pg_stat_user_tables, pg_stat_user_indexes and
// pg_statio_* are made of them, and every role may execute them by
// default. A tenant would read there how many rows every tenant has
// altogether, and how fast they change. `pgveil setup-sql` (and Setup,
// when its role is a superuser) takes them from PUBLIC and grants them to
// pg_read_all_stats (pg_monitor), so that monitoring keeps them. The
// database-wide counters (pg_stat_database) and pg_class.reltuples (the
// planner's estimate, which EXPLAIN shows anyway) stay readable.
const RelationStatsWhere = `p.pronamespace = 'pg_catalog'::regnamespace AND p.proname LIKE 'pg\_stat\_get\_%' AND p.proargtypes = '26'::oidvector
AND p.proname NOT LIKE 'pg\_stat\_get\_db\_%' AND p.proname NOT LIKE '%function%' AND p.proname NOT LIKE '%subscription%'`

// StatsReaderRole keeps the per-table counters of RelationStatsWhere.
const StatsReaderRole = "pg_read_all_stats"

// Readers keep them too: they read every row, so the counters tell them
// nothing they could not count, and Metabase's describe-database reads
// pg_stat_user_tables.n_live_tup (its estimated row count): without
// EXECUTE on pg_stat_get_live_tuples the whole query fails and Metabase
// syncs no table. Tenants and impersonators do not get them: see
// CatalogShadowSchema.

// ReaderStatsSQL is the statement a superuser runs to give readers the
// per-table counters (RelationStatsWhere) back: Setup runs it itself when
// its role is a superuser. It may be run again.
func ReaderStatsSQL(readers []string) string {
	body := `
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p WHERE ` + strings.ReplaceAll(RelationStatsWhere, "\n", "\n    ") + ` LOOP
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO ` + strings.NewReplacer("%", "%%", "'", "''").Replace(schema.QuoteIdents(readers)) + `', f);
  END LOOP;
END
`
	// The readers' names are the rules file's and may hold a tag.
	return "DO " + schema.QuoteDollar(body)
}

// LockDownSQL is what a superuser runs in the analytics database so that
// no role but pgveil's, its readers' grants aside, can write large objects
// or WAL messages, or read the per-table counters (see WriteFunctions,
// RelationStatsWhere): the statements Setup runs itself when its role is
// a superuser. They may be run again.
func LockDownSQL() []string {
	fns := make([]string, len(WriteFunctions))
	for i, f := range WriteFunctions {
		fns[i] = "pg_catalog." + f
	}
	body := `
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p WHERE ` + strings.ReplaceAll(RelationStatsWhere, "\n", "\n    ") + ` LOOP
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO ` + StatsReaderRole + `', f);
  END LOOP;
END
`
	return []string{
		"REVOKE EXECUTE ON FUNCTION " + strings.Join(fns, ", ") + " FROM PUBLIC",
		"DO $lockdown$" + body + "$lockdown$",
	}
}

// tenantSideSQL is a WITH RECURSIVE list ending in side(oid): every role a
// tenant login can use the privileges of. It walks down from the tenant
// group ($1) through pg_auth_members to every role that is a member of it,
// directly or not (the tenant roles, the logins granted them, the
// impersonators), then up from those to every role they are members of
// (the roles granted to a tenant login besides its tenant role). A login
// may SET ROLE to each of them, INHERIT or not. The roles named in $2
// (the readers, who read every row by design) and the current role
// (pgveil's) are not walked through: a staff login that is also a reader
// reads what the reader reads. PUBLIC is not in side: callers test it
// themselves (grantee 0).
const tenantSideSQL = `WITH RECURSIVE skip(oid) AS (
	SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = ANY($2::text[]) OR r.rolname = current_user
), down(oid) AS (
	SELECT g.oid FROM pg_catalog.pg_roles g WHERE g.rolname = $1::text
	UNION
	SELECT m.member FROM pg_catalog.pg_auth_members m JOIN down ON m.roleid = down.oid WHERE m.member NOT IN (SELECT oid FROM skip)
), side(oid) AS (
	SELECT oid FROM down
	UNION
	SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN side ON m.member = side.oid WHERE m.roleid NOT IN (SELECT oid FROM skip)
)`

// grantedSQL is an SQL condition: the ACL acl (NULL: the default of an
// object of kind kind, owned by owner) grants priv to PUBLIC or to a role
// of side, or owner is in side.
func grantedSQL(acl, kind, owner, priv string) string {
	return `(` + owner + ` IN (SELECT oid FROM side) OR EXISTS (SELECT FROM pg_catalog.aclexplode(coalesce(` + acl + `, pg_catalog.acldefault('` + kind + `', ` + owner + `))) a
WHERE a.privilege_type = '` + priv + `' AND (a.grantee = 0 OR a.grantee IN (SELECT oid FROM side))))`
}

// lockDown takes from PUBLIC and from the readers what lets them create
// something, as far as the current role may (functions: a superuser;
// CREATE and TEMPORARY on the database: its owner too; CREATE on a schema:
// its owner too), and the per-table counters when it is a superuser. Then
// it checks that no reader and, with tn, no role a tenant login can use,
// can create anything.
func lockDown(ctx context.Context, tx pgx.Tx, readers []string, tn *Tenancy) error {
	var super, dbOwner bool
	var db string
	err := tx.QueryRow(ctx, `SELECT r.rolsuper, pg_has_role(r.oid, d.datdba, 'USAGE'), d.datname::text FROM pg_roles r, pg_database d
WHERE r.rolname = current_user AND d.datname = current_database()`).Scan(&super, &dbOwner, &db)
	if err != nil {
		return fmt.Errorf("reading the current role: %w", sanitize(err))
	}
	var stmts []string
	// Grantees in the ACLs: "" is PUBLIC.
	who := `CASE WHEN a.grantee = 0 THEN '' ELSE (SELECT rolname::text FROM pg_roles WHERE oid = a.grantee) END`
	readerOrPublic := `(a.grantee = 0 OR a.grantee IN (SELECT oid FROM pg_roles WHERE rolname = ANY($1::text[])))`
	if super || dbOwner {
		rows, err := queryPairs(ctx, tx, `SELECT a.privilege_type, `+who+` FROM pg_database d
CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
WHERE d.datname = current_database() AND a.privilege_type IN ('CREATE', 'TEMPORARY') AND `+readerOrPublic+` ORDER BY 2, 1`, readers)
		if err != nil {
			return err
		}
		for _, r := range rows {
			stmts = append(stmts, `REVOKE `+r[0]+` ON DATABASE `+schema.QuoteIdent(db)+` FROM `+grantee(r[1]))
		}
	}
	rows, err := queryPairs(ctx, tx, `SELECT quote_ident(n.nspname), `+who+` FROM pg_namespace n
CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
WHERE a.privilege_type = 'CREATE' AND `+readerOrPublic+` AND ($2 OR pg_has_role(current_user, n.nspowner, 'USAGE')) ORDER BY 1, 2`, readers, super)
	if err != nil {
		return err
	}
	for _, r := range rows {
		stmts = append(stmts, `REVOKE CREATE ON SCHEMA `+r[0]+` FROM `+grantee(r[1]))
	}
	if super {
		rows, err := queryPairs(ctx, tx, `SELECT p.oid::regprocedure::text, `+who+` FROM pg_proc p
CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
WHERE p.oid IN (SELECT to_regprocedure(x) FROM unnest($2::text[]) x) AND a.privilege_type = 'EXECUTE' AND `+readerOrPublic+` ORDER BY 1, 2`, readers, WriteFunctions)
		if err != nil {
			return err
		}
		for _, r := range rows {
			stmts = append(stmts, `REVOKE EXECUTE ON FUNCTION `+r[0]+` FROM `+grantee(r[1]))
		}
		stats, err := queryStrings(ctx, tx, `SELECT p.oid::regprocedure::text FROM pg_proc p
WHERE `+RelationStatsWhere+` AND EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
ORDER BY 1`)
		if err != nil {
			return err
		}
		if len(stats) > 0 {
			list := strings.Join(stats, ", ")
			stmts = append(stmts, `REVOKE EXECUTE ON FUNCTION `+list+` FROM PUBLIC`, `GRANT EXECUTE ON FUNCTION `+list+` TO `+StatsReaderRole)
		}
		lacking, err := queryStrings(ctx, tx, `SELECT r FROM unnest($1::text[]) r WHERE EXISTS (SELECT FROM pg_proc p WHERE `+RelationStatsWhere+`
AND NOT EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
	WHERE a.privilege_type = 'EXECUTE' AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = r)))`, readers)
		if err != nil {
			return err
		}
		if len(lacking) > 0 {
			stmts = append(stmts, ReaderStatsSQL(lacking))
		}
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", firstWords(q), sanitize(err))
		}
	}
	return checkCreatesNothing(ctx, tx, readers, tn)
}

// queryPairs returns the first two columns of a catalog query's rows.
func queryPairs(ctx context.Context, q querier, sql string, args ...any) ([][2]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("querying the catalog: %w", sanitize(err))
	}
	var out [][2]string
	var a, b string
	_, err = pgx.ForEachRow(rows, []any{&a, &b}, func() error { out = append(out, [2]string{a, b}); return nil })
	if err != nil {
		return nil, fmt.Errorf("querying the catalog: %w", sanitize(err))
	}
	return out, nil
}

// grantee is a role name as GRANT and REVOKE take it ("" is PUBLIC).
func grantee(name string) string {
	if name == "" {
		return "PUBLIC"
	}
	return schema.QuoteIdent(name)
}

// checkCreatesNothing fails when PUBLIC, a reader or, with tn, a role a
// tenant login can use (superusers aside) can create a temporary table,
// a schema, an object in a schema, a large object or a WAL message, or
// owns a table of the database (directly or as a member of its owner):
// it could write there, and, holding REFERENCES (ReadPrivileges),
// declare a foreign key from it that probes the replica's keys past row
// level security. The
// error names the roles, but counts pgveil's tenant roles, whose names
// hold tenant values.
func checkCreatesNothing(ctx context.Context, tx pgx.Tx, readers []string, tn *Tenancy) error {
	group, prefix := "", ""
	if tn != nil {
		group, prefix = tn.Group, tn.RolePrefix
	}
	rows, err := tx.Query(ctx, tenantSideSQL+`, subject(oid) AS (
	SELECT oid FROM pg_roles WHERE rolname = ANY($2::text[]) UNION SELECT oid FROM side
), cand AS (
	SELECT r.oid, r.rolname::text AS name,
		$1::text <> '' AND starts_with(r.rolname::text, $3) AND NOT r.rolcanlogin AND pg_has_role(r.oid, $1::name, 'MEMBER') AS tenant
	FROM subject s JOIN pg_roles r ON r.oid = s.oid WHERE NOT r.rolsuper AND r.rolname <> current_user
), fns AS (
	SELECT to_regprocedure(x) AS oid FROM unnest($4::text[]) x WHERE to_regprocedure(x) IS NOT NULL
), owners AS (
	SELECT t.relowner AS owner, count(*) AS n, min(quote_ident(tn.nspname) || '.' || quote_ident(t.relname)) AS example
	FROM pg_class t JOIN pg_namespace tn ON tn.oid = t.relnamespace
	WHERE t.relkind IN ('r', 'p') AND t.relpersistence <> 't' AND tn.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
	GROUP BY t.relowner
)
SELECT w.what, c.name, c.tenant FROM cand c CROSS JOIN LATERAL (
	SELECT 'TEMPORARY ON DATABASE ' || quote_ident(current_database()) WHERE has_database_privilege(c.oid, current_database(), 'TEMPORARY')
	UNION ALL SELECT 'CREATE ON DATABASE ' || quote_ident(current_database()) WHERE has_database_privilege(c.oid, current_database(), 'CREATE')
	UNION ALL SELECT 'CREATE ON SCHEMA ' || quote_ident(n.nspname) FROM pg_namespace n
		WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema' AND has_schema_privilege(c.oid, n.oid, 'CREATE')
	UNION ALL SELECT 'EXECUTE ON FUNCTION ' || f.oid::regprocedure::text FROM fns f WHERE has_function_privilege(c.oid, f.oid, 'EXECUTE')
	UNION ALL SELECT 'OWNERSHIP OF ' || o.n || ' table(s), such as ' || o.example FROM owners o WHERE pg_has_role(c.oid, o.owner, 'MEMBER')
) w(what) ORDER BY 1, 3, 2`, group, readers, prefix, WriteFunctions)
	if err != nil {
		return fmt.Errorf("reading what readers and tenants can create: %w", sanitize(err))
	}
	type holders struct {
		names   []string
		tenants int
	}
	by := map[string]*holders{}
	var order []string
	var what, name string
	var tenant bool
	_, err = pgx.ForEachRow(rows, []any{&what, &name, &tenant}, func() error {
		h := by[what]
		if h == nil {
			h = &holders{}
			by[what] = h
			order = append(order, what)
		}
		if tenant {
			h.tenants++
		} else {
			h.names = append(h.names, name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading what readers and tenants can create: %w", sanitize(err))
	}
	if len(order) == 0 {
		return nil
	}
	var errs []error
	for _, w := range order {
		h := by[w]
		who := slices.Clone(h.names)
		if h.tenants > 0 {
			who = append(who, fmt.Sprintf("%d tenant role(s)", h.tenants))
		}
		errs = append(errs, fmt.Errorf("%s: %s", w, strings.Join(who, ", ")))
	}
	return &CreatesError{Err: fmt.Errorf("readers and tenant logins must be able to create nothing (large objects and WAL messages are written even in read-only transactions), but these roles have privileges that let them; "+
		"pgveil's role cannot take them back (functions need a superuser; the database, its owner): run pgveil setup-sql --part target as a superuser again, or REVOKE them from PUBLIC and from the roles named (or the roles they have them through), and give the tables they own to another role (ALTER TABLE ... OWNER TO):\n%w",
		errors.Join(errs...))}
}

// CreatesError says that readers or tenant logins can still create
// something pgveil's role could not take from them. Setup and
// SetupTenancy return it after committing everything else: the caller
// decides whether it is fatal (on a first start, it is: setup-sql comes
// first) or a condition to report while the replica keeps streaming
// (an existing replica, whose readers could do the same before).
type CreatesError struct{ Err error }

func (e *CreatesError) Error() string { return e.Err.Error() }
func (e *CreatesError) Unwrap() error { return e.Err }
