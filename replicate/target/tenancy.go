package target

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
	"pgveil/transform"
)

// Tenancy is how the replica keeps tenants apart (rules.Tenancy): each
// value of a table's tenant column has a role, RolePrefix followed by the
// value's text form ("tenant_42"), a member of Group, and row level
// security lets a role see only the rows whose tenant column holds the
// value of a tenant role it has the privileges of. Shared tables are read
// whole by every tenant; tenants cannot read the other tables.
//
// Under tenancy every replicated table has row level security enabled and
// pgveil's policies, all FOR SELECT and named pgveil_*:
//
//   - pgveil_readers: the reader roles see every row;
//   - pgveil_tenant (tenant tables): Group sees the rows of its tenants;
//   - pgveil_shared (shared tables): Group sees every row;
//   - pgveil_impersonators (tables tenants read, with impersonators):
//     USING (false), the impersonators see no row.
//
// The table's owner (pgveil's role) is not subject to them.
//
// The impersonators (NOINHERIT logins granted every tenant role, for
// Metabase's connection impersonation) hold ReadPrivileges on the tables
// tenants read, and USAGE on their schemas, themselves: Metabase syncs a
// database with the connection's own role, before any SET ROLE, and lists
// only the tables that role may SELECT; without a grant of its own the
// impersonator synced no table. Row level security gives it no row until
// it takes a tenant's role (its own policy is USING (false), and the
// tenant policies are for the group, whose privileges a NOINHERIT role
// does not have); once it has, it has the tenant's privileges, not its
// own. pgveil_impersonators records who holds the grants, so that
// removing tenancy takes them back with the policies.
type Tenancy struct {
	RolePrefix    string
	Group         string
	Impersonators []string
	// Readers are the reader roles (target.readers): they read every row,
	// so ReadTenancy does not count what is granted to them, or to a
	// login through them, as a leak to tenants. SetupTenancy takes them
	// as an argument instead.
	Readers []string
	// Tables maps a table to how tenants read it; a table that is not
	// there is hidden from tenants.
	Tables map[schema.TableName]TenantTable
}

// TenantTable is how tenants read one table: through Column, or all of
// it when Shared.
type TenantTable struct {
	Column string
	Shared bool
}

// MaxRoleName is the longest role name PostgreSQL keeps (NAMEDATALEN-1):
// a tenant value longer than this minus the prefix gets no role, and its
// rows are seen by no tenant.
const MaxRoleName = 63

// Policy names.
const (
	policyReaders = "pgveil_readers"
	policyTenant  = "pgveil_tenant"
	policyShared  = "pgveil_shared"
	policyImp     = "pgveil_impersonators"
)

// ensureTenantsFunc creates the missing roles of a list of tenant values,
// each a member of the group and granted to each impersonator, and
// returns how many it created. Values with no room in a role name are
// skipped; so are names taken by a role outside the group (the policies
// ignore it). The name holds a version: a new body gets a new name.
const ensureTenantsFunc = InternalSchema + ".ensure_tenants_v2"

const ensureTenantsSQL = `CREATE FUNCTION ` + ensureTenantsFunc + `(prefix text, grp text, impersonators jsonb, vals jsonb) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET lock_timeout = '10s' AS $f$
DECLARE
	v text;
	r text;
	i text;
	n integer := 0;
BEGIN
	-- In one order everywhere: two of pgveil's transactions creating the
	-- same roles wait for each other instead of deadlocking.
	FOR v IN SELECT d.x FROM (SELECT DISTINCT x FROM jsonb_array_elements_text(vals) x) d ORDER BY d.x COLLATE "C" LOOP
		r := prefix || v;
		CONTINUE WHEN v = '' OR octet_length(r) > 63;
		CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
		BEGIN
			EXECUTE format('CREATE ROLE %I NOLOGIN IN ROLE %I', r, grp);
		EXCEPTION WHEN unique_violation OR duplicate_object THEN
			-- Created meanwhile by another of pgveil's transactions (another
			-- copy, or pgveil in another database of the cluster).
			CONTINUE;
		WHEN reserved_name THEN
			-- "public", "none", pg_...: no tenant can have that role.
			CONTINUE;
		END;
		FOR i IN SELECT jsonb_array_elements_text(impersonators) LOOP
			EXECUTE format('GRANT %I TO %I', r, i);
		END LOOP;
		n := n + 1;
	END LOOP;
	RETURN n;
END
$f$`

// sameTenantTypes checks that every tenant column of the plan has one base
// type. Tenant roles are shared by every tenant table: with a text tenant
// column beside a bigint one, the text "01" would get a role whose suffix
// casts to the bigint 1, another tenant's.
func (tn *Tenancy) sameTenantTypes(plan *transform.Plan) error {
	for _, t := range plan.Tables() {
		if _, _, err := tn.tenantColumn(t); err != nil {
			return err
		}
	}
	var first, firstCol string
	for _, t := range plan.Tables() {
		col, _, _ := tn.tenantColumn(t)
		if col == nil {
			continue
		}
		at := tableLabel(t) + "." + schema.QuoteIdent(col.Column.Name)
		switch {
		case first == "":
			first, firstCol = col.Column.Type.Name, at
		case col.Column.Type.Name != first:
			return fmt.Errorf("tenant columns must all have one type, as the tenant key they hold: %s is %s, %s is %s", firstCol, first, at, col.Column.Type.Name)
		}
	}
	return nil
}

// tenantColumn returns the tenant column of t (nil when t has none).
func (tn *Tenancy) tenantColumn(t *transform.TablePlan) (*transform.ColumnPlan, TenantTable, error) {
	tt, ok := tn.Tables[schema.TableName{Schema: t.Table.Schema, Name: t.Table.Name}]
	if !ok || tt.Shared {
		return nil, tt, nil
	}
	for i := range t.Columns {
		if c := &t.Columns[i]; c.Column.Name == tt.Column {
			if !c.Column.Type.CanonicalText() {
				return nil, tt, fmt.Errorf("table %s: tenant column %s has type %s; a tenant column must be an integer, uuid or text column",
					tableLabel(t), c.Column.Name, c.Column.Type.String())
			}
			return c, tt, nil
		}
	}
	return nil, tt, fmt.Errorf("table %s: tenant column %s is not replicated", tableLabel(t), tt.Column)
}

// policies returns the CREATE POLICY statements t must have, by policy
// name.
func (tn *Tenancy) policies(t *transform.TablePlan, readers []string) (map[string]string, error) {
	name := tableIdent(t)
	out := map[string]string{}
	if len(readers) > 0 {
		out[policyReaders] = `CREATE POLICY ` + policyReaders + ` ON ` + name + ` FOR SELECT TO ` + schema.QuoteIdents(readers) + ` USING (true)`
	}
	col, tt, err := tn.tenantColumn(t)
	switch {
	case err != nil:
		return nil, err
	case col != nil:
		grp := schema.QuoteIdent(tn.Group)
		out[policyTenant] = `CREATE POLICY ` + policyTenant + ` ON ` + name + ` FOR SELECT TO ` + grp + ` USING (` +
			schema.QuoteIdent(col.Column.Name) + ` = ANY (ARRAY(` + tenantValuesSQL(tn, col.Column.Type.Name) + `)))`
	case tt.Shared:
		out[policyShared] = `CREATE POLICY ` + policyShared + ` ON ` + name + ` FOR SELECT TO ` + schema.QuoteIdent(tn.Group) + ` USING (true)`
	}
	if len(tn.Impersonators) > 0 {
		// Every table, those hidden from tenants included: Metabase syncs
		// with the impersonator's own account and lists only what it may
		// SELECT; it reads no row of any until it takes a tenant's role,
		// which then reads only what tenants read.
		out[policyImp] = `CREATE POLICY ` + policyImp + ` ON ` + name + ` FOR SELECT TO ` + schema.QuoteIdents(tn.Impersonators) + ` USING (false)`
	}
	return out, nil
}

// tenantValuesSQL is the query of the tenant policies: the tenant values
// (as typ) of the tenant roles whose privileges the current role has. It
// walks up from the current role through pg_auth_members (a few rows for
// a tenant's login) rather than testing every tenant role, so its cost
// does not grow with the number of tenants; pg_has_role then decides,
// with PostgreSQL's own inheritance rules (an impersonator, NOINHERIT,
// has no tenant's privileges until it SETs ROLE). A tenant role is a
// member of the group whose name starts with the prefix, and a plain role
// (no login, no superuser, no BYPASSRLS), as pgveil creates it. OFFSET 0
// keeps the planner from pushing those tests down to every role (the
// join's estimates are generic): they run on the few candidates only
// (pg_has_role on each of 1,000 tenant roles cost 6 ms a query).
func tenantValuesSQL(tn *Tenancy, typ string) string {
	return `WITH RECURSIVE up(oid) AS (SELECT u.oid FROM pg_catalog.pg_roles u WHERE u.rolname = current_user` +
		` UNION SELECT a.roleid FROM pg_catalog.pg_auth_members a JOIN up ON a.member = up.oid)` +
		` SELECT pg_catalog.substr(c.rolname, ` + fmt.Sprint(len(tn.RolePrefix)+1) + `)::` + typ +
		` FROM (SELECT r.oid, r.rolname, r.rolcanlogin, r.rolsuper, r.rolbypassrls FROM up JOIN pg_catalog.pg_roles r ON r.oid = up.oid OFFSET 0) c` +
		` WHERE pg_catalog.starts_with(c.rolname, ` + schema.QuoteLiteral(tn.RolePrefix) + `) AND NOT c.rolcanlogin AND NOT c.rolsuper AND NOT c.rolbypassrls` +
		` AND pg_catalog.pg_has_role(current_user, c.oid, 'USAGE')` +
		` AND pg_catalog.pg_has_role(c.oid, ` + schema.QuoteLiteral(tn.Group) + `::name, 'MEMBER')`
}

// readable reports whether tenants read t at all.
func (tn *Tenancy) readable(t *transform.TablePlan) bool {
	_, ok := tn.Tables[schema.TableName{Schema: t.Table.Schema, Name: t.Table.Name}]
	return ok
}

// policyMark is the comment pgveil puts on a policy: the digest of the
// statement that created it, so that an unchanged policy is left alone
// (re-creating one takes an ACCESS EXCLUSIVE lock on the table).
func policyMark(create string) string {
	sum := sha256.Sum256([]byte(create))
	return "pgveil " + hex.EncodeToString(sum[:8])
}

// existingPolicy is a pgveil policy as the target has it.
type existingPolicy struct{ name, mark string }

// readGrants is which of the roles tenants read a table through (the
// group and the impersonators) hold privileges on it: lacking misses one
// of ReadPrivileges, holding has any.
type readGrants struct{ lacking, holding []string }

// tenantReaders are the roles that get ReadPrivileges on the tables
// tenants read: the group and the impersonators.
func (tn *Tenancy) tenantReaders() []string {
	return append([]string{tn.Group}, tn.Impersonators...)
}

// tableTenancySQL returns the statements that give t its row level
// security, policies and tenant privileges, given what it has (rls: row
// level security is enabled; have: its pgveil policies; granted: what the
// group and the impersonators hold).
func (tn *Tenancy) tableTenancySQL(t *transform.TablePlan, readers []string, rls bool, have []existingPolicy, granted readGrants) ([]string, error) {
	want, err := tn.policies(t, readers)
	if err != nil {
		return nil, err
	}
	name := tableIdent(t)
	var stmts []string
	if !rls {
		stmts = append(stmts, `ALTER TABLE `+name+` ENABLE ROW LEVEL SECURITY`)
	}
	for _, p := range have {
		if create, ok := want[p.name]; !ok || policyMark(create) != p.mark {
			stmts = append(stmts, `DROP POLICY `+schema.QuoteIdent(p.name)+` ON `+name)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(want)) {
		create := want[n]
		i := slices.IndexFunc(have, func(p existingPolicy) bool { return p.name == n })
		if i >= 0 && have[i].mark == policyMark(create) {
			continue
		}
		stmts = append(stmts, create, `COMMENT ON POLICY `+n+` ON `+name+` IS `+schema.QuoteLiteral(policyMark(create)))
	}
	should := tn.tableReaders(t)
	if grant := slices.DeleteFunc(slices.Clone(granted.lacking), func(r string) bool { return !slices.Contains(should, r) }); len(grant) > 0 {
		stmts = append(stmts, `GRANT `+ReadPrivileges+` ON TABLE `+name+` TO `+schema.QuoteIdents(grant))
	}
	if revoke := slices.DeleteFunc(slices.Clone(granted.holding), func(r string) bool { return slices.Contains(should, r) }); len(revoke) > 0 {
		stmts = append(stmts, `REVOKE ALL ON TABLE `+name+` FROM `+schema.QuoteIdents(revoke))
	}
	return stmts, nil
}

// tableReaders are the roles of tenantReaders that get ReadPrivileges on
// t: the group and the impersonators on a table tenants read; on one
// hidden from tenants, the impersonators alone (their policy gives them
// no row: Metabase's sync lists the table, and a tenant's role, once
// taken, is refused it).
func (tn *Tenancy) tableReaders(t *transform.TablePlan) []string {
	if tn.readable(t) {
		return tn.tenantReaders()
	}
	return tn.Impersonators
}

// SwitchTenancySQL returns the statements that give a table just switched
// in from staging (SwitchSQL: it has no policies yet) its row level
// security, policies and tenant privileges, and its values their roles.
// With tn nil it returns nil.
func SwitchTenancySQL(live *transform.TablePlan, tn *Tenancy, readers []string) ([]string, error) {
	if tn == nil {
		return nil, nil
	}
	stmts, err := tn.tableTenancySQL(live, readers, false, nil, readGrants{lacking: tn.tenantReaders()})
	if err != nil {
		return nil, err
	}
	if roles := tn.tableReaders(live); len(roles) > 0 {
		stmts = append(stmts, `GRANT USAGE ON SCHEMA `+schema.QuoteIdent(live.Table.Schema)+` TO `+schema.QuoteIdents(roles))
	}
	sync, err := SyncTenantsSQL(live, tn)
	if err != nil {
		return nil, err
	}
	return append(stmts, sync...), nil
}

// CatalogShadowSchema holds what tenants and impersonators read instead
// of pg_catalog.pg_stat_user_tables: Metabase's describe-database reads
// its n_live_tup (estimated row count) for every table, and the exact
// per-table counters are not theirs to read (RelationStatsWhere): without
// EXECUTE on pg_stat_get_live_tuples the whole query fails, and Metabase
// syncs no table. The query names the view without a schema, and
// PostgreSQL looks in pg_catalog first only when search_path does not
// name it: SetupTenancy sets the impersonators' search_path to
// CatalogShadowPath, so that the name finds this schema's view of the
// planner's estimates (pg_class.reltuples, readable by every role
// anyway). A tenant's login that Metabase connects with directly needs
// the same: ALTER ROLE login SET search_path = CatalogShadowPath.
const CatalogShadowSchema = "pgveil_catalog"

// CatalogShadowPath is the search_path of the roles that read
// CatalogShadowSchema's view instead of pg_catalog's.
const CatalogShadowPath = CatalogShadowSchema + `, pg_catalog, "$user", public`

// catalogShadowSQL returns the statements that create the shadow view and
// grant it to roles.
func catalogShadowSQL(roles []string) []string {
	sch := schema.QuoteIdent(CatalogShadowSchema)
	return []string{
		`CREATE SCHEMA IF NOT EXISTS ` + sch,
		`REVOKE ALL ON SCHEMA ` + sch + ` FROM PUBLIC`,
		`CREATE OR REPLACE VIEW ` + sch + `.pg_stat_user_tables AS SELECT c.oid AS relid, n.nspname AS schemaname, c.relname,
	GREATEST(c.reltuples, 0)::bigint AS n_live_tup
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'`,
		`COMMENT ON VIEW ` + sch + `.pg_stat_user_tables IS 'pgveil: the planner''s row estimates, for Metabase''s sync as tenants and impersonators (docs/operations.md, Metabase)'`,
		`GRANT USAGE ON SCHEMA ` + sch + ` TO ` + schema.QuoteIdents(roles),
		`GRANT SELECT ON ` + sch + `.pg_stat_user_tables TO ` + schema.QuoteIdents(roles),
	}
}

// ensureCall is the statement that calls ensureTenantsFunc for tn's
// roles, vals being an SQL expression of type jsonb: the values.
func (tn *Tenancy) ensureCall(vals string) string {
	return `SELECT ` + ensureTenantsFunc + `(` + schema.QuoteLiteral(tn.RolePrefix) + `, ` + schema.QuoteLiteral(tn.Group) + `, ` +
		schema.QuoteLiteral(jsonStrings(tn.Impersonators)) + `::jsonb, ` + vals + `)`
}

// rolesMark is what pgveil.tables.tenant_roles records once every value
// of a table's tenant column col has its role under tn: the prefix, the
// group and the column, which decide the roles.
func (tn *Tenancy) rolesMark(col string) string {
	return jsonStrings([]string{tn.RolePrefix, tn.Group, col})
}

// SyncTenantsSQL returns the statements that create the missing tenant
// roles of the values t holds now, then record in pgveil.tables that it
// has them (nil when t has no tenant column), to run after a copy. A
// copy clears the record; a start syncs only tables without it, so that
// a restart does not scan every tenant table again.
func SyncTenantsSQL(t *transform.TablePlan, tn *Tenancy) ([]string, error) {
	if tn == nil {
		return nil, nil
	}
	col, _, err := tn.tenantColumn(t)
	if err != nil || col == nil {
		return nil, err
	}
	c := schema.QuoteIdent(col.Column.Name)
	return []string{
		tn.ensureCall(`coalesce((SELECT jsonb_agg(DISTINCT ` + c + `::text) FROM ` + tableIdent(t) + ` WHERE ` + c + ` IS NOT NULL), '[]')`),
		`UPDATE pgveil.tables SET tenant_roles = ` + schema.QuoteLiteral(tn.rolesMark(col.Column.Name)) +
			` WHERE schema_name = ` + schema.QuoteLiteral(t.Table.Schema) + ` AND table_name = ` + schema.QuoteLiteral(t.Table.Name),
	}, nil
}

// jsonStrings is a JSON array of ss.
func jsonStrings(ss []string) string {
	b := []byte{'['}
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = transform.AppendJSONString(b, []byte(s))
	}
	return string(append(b, ']'))
}

// SetupTenancy brings the tenant isolation of the replica in line with tn,
// in one transaction on conn, after Setup:
//
//   - it checks that the current role may create roles (CREATEROLE), that
//     the group, if it exists, cannot log in and does not bypass row
//     level security, and that each impersonator exists, is NOINHERIT (it
//     must SET ROLE to a tenant to see its rows) and is no superuser;
//   - it creates the group (NOLOGIN) and the function that creates tenant
//     roles;
//   - each plan table gets row level security and pgveil's policies (see
//     Tenancy), and the group SELECT on the tables tenants read (and USAGE
//     on their schemas), nothing on the others;
//   - every tenant value the tenant tables hold gets its role, and every
//     tenant role is granted to every impersonator;
//   - what lets a role create something is taken from PUBLIC as far as
//     the current role may, and no role a tenant login can use may create
//     anything (see Setup and readers.go);
//   - the roles a tenant login can use (the group, the tenant roles, the
//     logins and what they are members of, not the readers) lose SELECT
//     on views, and EXECUTE on SECURITY DEFINER functions, that would show
//     tenants other tenants' rows, when pgveil's role owns them (see
//     readLeaks): materialized views (row level security does not apply
//     to their content), views without security_invoker (they read the
//     tables as their owner), functions whose owner reads past row level
//     security. Their names are returned. One still granted to PUBLIC or
//     owned by another role is an error.
//
// With tn nil it removes what an earlier tenancy left on the plan's
// tables: pgveil's tenant and shared policies, and row level security
// when no other policy remains. Every statement waits at most 10 s for a
// lock; unchanged policies are left alone. conn must not be in a
// transaction.
func SetupTenancy(ctx context.Context, conn *pgx.Conn, plan *transform.Plan, tn *Tenancy, readers []string) (revoked []string, err error) {
	var creates *CreatesError
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		s := &tenancySetup{ctx: ctx, tx: tx, plan: plan, tn: tn, readers: readers}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+lockTimeout+`'`); err != nil {
			return sanitize(err)
		}
		if tn == nil {
			return s.remove()
		}
		var err error
		revoked, err = s.run()
		creates = s.creates
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tenancy: %w", err)
	}
	if creates != nil {
		return revoked, fmt.Errorf("tenancy: %w", creates)
	}
	return revoked, nil
}

// tenancySetup is the state of SetupTenancy's transaction.
type tenancySetup struct {
	ctx     context.Context
	tx      pgx.Tx
	plan    *transform.Plan
	tn      *Tenancy
	readers []string
	// creates is what tenant logins can still create and pgveil's role
	// cannot take from them (readers.go): returned after the commit.
	creates *CreatesError
}

func (s *tenancySetup) exec(sql string) error {
	if _, err := s.tx.Exec(s.ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", firstWords(sql), sanitize(err))
	}
	return nil
}

func (s *tenancySetup) run() ([]string, error) {
	if err := s.tn.sameTenantTypes(s.plan); err != nil {
		return nil, err
	}
	if err := s.roles(); err != nil {
		return nil, err
	}
	var exists bool
	if err := s.tx.QueryRow(s.ctx, `SELECT to_regprocedure($1) IS NOT NULL`, ensureTenantsFunc+"(text, text, jsonb, jsonb)").Scan(&exists); err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", sanitize(err))
	}
	if !exists {
		if err := s.exec(ensureTenantsSQL); err != nil {
			return nil, err
		}
	}
	var schemas []string
	schemaRoles := map[string][]string{}
	for _, t := range s.plan.Tables() {
		if err := s.table(t); err != nil {
			return nil, err
		}
		for _, r := range s.tn.tableReaders(t) {
			if !slices.Contains(schemas, t.Table.Schema) {
				schemas = append(schemas, t.Table.Schema)
			}
			if !slices.Contains(schemaRoles[t.Table.Schema], r) {
				schemaRoles[t.Table.Schema] = append(schemaRoles[t.Table.Schema], r)
			}
		}
	}
	for _, sch := range schemas {
		lacking, err := queryStrings(s.ctx, s.tx, `SELECT r FROM unnest($1::text[]) WITH ORDINALITY u(r, i) WHERE NOT has_schema_privilege(r, $2, 'USAGE') ORDER BY i`, schemaRoles[sch], sch)
		if err != nil {
			return nil, err
		}
		if len(lacking) > 0 {
			if err := s.exec(`GRANT USAGE ON SCHEMA ` + schema.QuoteIdent(sch) + ` TO ` + schema.QuoteIdents(lacking)); err != nil {
				return nil, err
			}
		}
	}
	// Tables whose every value has its role under these settings are not
	// scanned again.
	synced := map[schema.TableName]string{}
	rows, err := s.tx.Query(s.ctx, `SELECT schema_name, table_name, coalesce(tenant_roles, '') FROM pgveil.tables`)
	if err != nil {
		return nil, fmt.Errorf("reading pgveil.tables: %w", sanitize(err))
	}
	var n schema.TableName
	var mark string
	if _, err := pgx.ForEachRow(rows, []any{&n.Schema, &n.Name, &mark}, func() error { synced[n] = mark; return nil }); err != nil {
		return nil, fmt.Errorf("reading pgveil.tables: %w", sanitize(err))
	}
	for _, t := range s.plan.Tables() {
		col, _, _ := s.tn.tenantColumn(t) // checked by sameTenantTypes
		if col == nil || synced[schema.TableName{Schema: t.Table.Schema, Name: t.Table.Name}] == s.tn.rolesMark(col.Column.Name) {
			continue
		}
		stmts, err := SyncTenantsSQL(t, s.tn)
		if err != nil {
			return nil, err
		}
		for _, q := range stmts {
			if err := s.exec(q); err != nil {
				return nil, fmt.Errorf("creating the tenant roles of %s: %w", tableLabel(t), err)
			}
		}
	}
	if err := s.impersonators(); err != nil {
		return nil, err
	}
	for _, q := range catalogShadowSQL(s.tn.tenantReaders()) {
		if err := s.exec(q); err != nil {
			return nil, fmt.Errorf("creating %s (docs/operations.md, Metabase): %w", CatalogShadowSchema, err)
		}
	}
	for _, imp := range s.tn.Impersonators {
		var path string
		err := s.tx.QueryRow(s.ctx, `SELECT coalesce((SELECT substr(x, 13) FROM pg_db_role_setting d, unnest(d.setconfig) x
WHERE d.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1) AND d.setdatabase = 0 AND starts_with(x, 'search_path=')), '')`, imp).Scan(&path)
		if err != nil {
			return nil, fmt.Errorf("reading role %s: %w", imp, sanitize(err))
		}
		if path != CatalogShadowPath {
			if err := s.exec(`ALTER ROLE ` + schema.QuoteIdent(imp) + ` SET search_path = ` + CatalogShadowPath); err != nil {
				return nil, fmt.Errorf("impersonator %s: %w", imp, err)
			}
		}
	}
	// Tenant logins create nothing, as readers (readers.go). What pgveil
	// cannot take from them is reported after the rest is committed.
	if err := lockDown(s.ctx, s.tx, s.readers, s.tn); err != nil {
		if !errors.As(err, &s.creates) {
			return nil, err
		}
	}
	return s.leakyViews()
}

// roles checks the current role, the group and the impersonators, and
// creates the group.
func (s *tenancySetup) roles() error {
	var super, createRole bool
	var me string
	if err := s.tx.QueryRow(s.ctx, `SELECT rolname::text, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user`).Scan(&me, &super, &createRole); err != nil {
		return fmt.Errorf("reading the current role: %w", sanitize(err))
	}
	if !super && !createRole {
		return fmt.Errorf("tenancy needs a target role that may create the tenant roles: ALTER ROLE %s CREATEROLE", schema.QuoteIdent(me))
	}
	var login, bypass bool
	err := s.tx.QueryRow(s.ctx, `SELECT rolcanlogin, rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = $1`, s.tn.Group).Scan(&login, &bypass)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Roles belong to the cluster: pgveil in another database may
		// create the group at the same time.
		err := pgx.BeginFunc(s.ctx, s.tx, func(sp pgx.Tx) error {
			_, err := sp.Exec(s.ctx, `CREATE ROLE `+schema.QuoteIdent(s.tn.Group)+` NOLOGIN`)
			return err
		})
		if err != nil && !isSQLState(err, "23505", "42710") {
			return fmt.Errorf("creating the tenant group %s: %w", s.tn.Group, sanitize(err))
		}
	case err != nil:
		return fmt.Errorf("reading role %s: %w", s.tn.Group, sanitize(err))
	case login || bypass:
		return fmt.Errorf("tenant group %s can log in or bypasses row level security: it must be a plain NOLOGIN role", s.tn.Group)
	}
	for _, r := range s.readers {
		var member bool
		if err := s.tx.QueryRow(s.ctx, `SELECT pg_has_role($1, $2, 'MEMBER')`, r, s.tn.Group).Scan(&member); err != nil {
			return fmt.Errorf("reading role %s: %w", r, sanitize(err))
		}
		if member {
			return fmt.Errorf("reader %s is a member of the tenant group %s", r, s.tn.Group)
		}
	}
	for _, r := range s.tn.Impersonators {
		var inherit, super, bypass bool
		err := s.tx.QueryRow(s.ctx, `SELECT rolinherit, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1`, r).Scan(&inherit, &super, &bypass)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("impersonator %s does not exist: CREATE ROLE %s LOGIN NOINHERIT PASSWORD '...'", r, schema.QuoteIdent(r))
		case err != nil:
			return fmt.Errorf("reading role %s: %w", r, sanitize(err))
		case super || bypass:
			return fmt.Errorf("impersonator %s is a superuser or bypasses row level security", r)
		case inherit:
			return fmt.Errorf("impersonator %s has INHERIT: it would see every tenant's rows without SET ROLE; ALTER ROLE %s NOINHERIT", r, schema.QuoteIdent(r))
		}
	}
	return nil
}

// table brings one table's row level security, policies and grants in line.
func (s *tenancySetup) table(t *transform.TablePlan) error {
	var relOID uint32
	var rls bool
	var granted readGrants
	// has_table_privilege counts a NOINHERIT impersonator's own grants
	// (and PUBLIC's) only.
	err := s.tx.QueryRow(s.ctx, `SELECT c.oid, c.relrowsecurity,
	array(SELECT r FROM unnest($3::text[]) WITH ORDINALITY u(r, i) WHERE NOT (has_table_privilege(r, c.oid, 'SELECT') AND has_table_privilege(r, c.oid, 'REFERENCES')) ORDER BY i),
	array(SELECT r FROM unnest($3::text[]) WITH ORDINALITY u(r, i) WHERE has_table_privilege(r, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') ORDER BY i)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, t.Table.Schema, t.Table.Name, s.tn.tenantReaders()).Scan(&relOID, &rls, &granted.lacking, &granted.holding)
	if err != nil {
		return fmt.Errorf("reading table %s: %w", tableLabel(t), sanitize(err))
	}
	have, err := s.policies(relOID)
	if err != nil {
		return fmt.Errorf("reading the policies of %s: %w", tableLabel(t), err)
	}
	stmts, err := s.tn.tableTenancySQL(t, s.readers, rls, have, granted)
	if err != nil {
		return err
	}
	for _, q := range stmts {
		if err := s.exec(q); err != nil {
			return fmt.Errorf("table %s: %w", tableLabel(t), err)
		}
	}
	return nil
}

// policies returns the pgveil policies of a table with their marks.
func (s *tenancySetup) policies(relOID uint32) ([]existingPolicy, error) {
	rows, err := s.tx.Query(s.ctx, `SELECT polname::text, coalesce(obj_description(oid, 'pg_policy'), '') FROM pg_policy
WHERE polrelid = $1 AND starts_with(polname::text, 'pgveil_') ORDER BY polname`, relOID)
	if err != nil {
		return nil, sanitize(err)
	}
	var out []existingPolicy
	var p existingPolicy
	_, err = pgx.ForEachRow(rows, []any{&p.name, &p.mark}, func() error { out = append(out, p); return nil })
	if err != nil {
		return nil, sanitize(err)
	}
	return out, nil
}

// tenantRolesFrom selects the tenant roles r (prefix $1, group $2) as the
// policies take them: direct members of the group, named with the prefix,
// plain roles. Superusers are members of every role in PostgreSQL's sense,
// and a login may be a member through a tenant role: neither is a tenant.
const tenantRolesFrom = `pg_roles r JOIN pg_auth_members m ON m.member = r.oid JOIN pg_roles g ON g.oid = m.roleid
WHERE g.rolname = $2 AND starts_with(r.rolname::text, $1) AND NOT r.rolcanlogin AND NOT r.rolsuper AND NOT r.rolbypassrls`

// impersonators grants every tenant role to every impersonator.
func (s *tenancySetup) impersonators() error {
	for _, imp := range s.tn.Impersonators {
		missing, err := queryStrings(s.ctx, s.tx, `SELECT r.rolname::text FROM `+tenantRolesFrom+`
AND NOT pg_has_role($3::name, r.oid, 'MEMBER') ORDER BY 1`, s.tn.RolePrefix, s.tn.Group, imp)
		if err != nil {
			return err
		}
		for _, r := range missing {
			if err := s.exec(`GRANT ` + schema.QuoteIdent(r) + ` TO ` + schema.QuoteIdent(imp)); err != nil {
				return err
			}
		}
	}
	return nil
}

// leakyViews takes away from tenants what would show them rows row level
// security hides from them (see readLeaks), and returns the names of the
// views and functions it took: the grants to the roles a tenant login can
// use, on those pgveil's role owns. One that tenants can still read or
// call afterwards (granted to PUBLIC, or owned by another role) is an
// error.
func (s *tenancySetup) leakyViews() ([]string, error) {
	tables := make([]schema.TableName, 0, len(s.plan.Tables()))
	for _, t := range s.plan.Tables() {
		tables = append(tables, schema.TableName{Schema: t.Table.Schema, Name: t.Table.Name})
	}
	leaks, err := readLeaks(s.ctx, s.tx, s.tn.Group, s.readers, tables)
	if err != nil || len(leaks) == 0 {
		return nil, err
	}
	var revoked []string
	for _, l := range leaks {
		if !l.mine {
			continue // reported below: only its owner can take it back
		}
		var did bool
		for _, g := range l.grantees {
			if g == "" {
				continue // PUBLIC: reported below, pgveil does not take it from everyone
			}
			q := `REVOKE ALL ON TABLE ` + l.name + ` FROM ` + schema.QuoteIdent(g)
			if l.function {
				q = `REVOKE EXECUTE ON FUNCTION ` + l.name + ` FROM ` + schema.QuoteIdent(g)
			}
			if err := s.exec(q); err != nil {
				return nil, err
			}
			did = true
		}
		if did {
			revoked = append(revoked, l.name)
		}
	}
	still, err := readLeaks(s.ctx, s.tx, s.tn.Group, s.readers, tables)
	if err != nil {
		return nil, err
	}
	if len(still) > 0 {
		names := make([]string, len(still))
		for i, l := range still {
			names[i] = l.name
		}
		return nil, fmt.Errorf("tenants can read or call %s, and would see other tenants' rows there (pgveil's role does not own it, or it is granted to PUBLIC): its owner must revoke it from PUBLIC and from tenants, "+
			"or make views security_invoker (ALTER VIEW ... SET (security_invoker = true)) and functions SECURITY INVOKER",
			strings.Join(names, ", "))
	}
	return revoked, nil
}

// leak is a view or function through which tenants would see rows row
// level security hides from them.
type leak struct {
	name     string   // quoted: app.v, or app.f(integer) for a function
	function bool     // a function, not a view
	mine     bool     // owned by pgveil's role (or a role it is a member of)
	grantees []string // the roles a tenant login can use that it is granted to; "" is PUBLIC
}

// readLeaks lists what tenant logins can read or call and would show
// them rows row level security hides, whatever role it is granted to:
// PUBLIC, the group, a tenant role, a tenant's login, or any role a
// tenant login is a member of (tenantSideSQL; not the readers):
//
//   - views built (directly or through other views) on tables and that
//     lack security_invoker: they read the tables as their owner, which
//     row level security does not restrict (it owns them, or reads
//     through a reader's policy);
//   - materialized views built on tables: a copy of the rows, and row
//     level security does not apply to it;
//   - SECURITY DEFINER functions whose owner reads the tables past row
//     level security (a superuser, BYPASSRLS, a member of a table's owner
//     or of a reader): PostgreSQL cannot tell what a function reads, so
//     every such function tenants can call counts, but those of
//     extensions, of pg_catalog and of pgveil's schemas.
//
// A column privilege (GRANT SELECT (col) ON v) counts as much as a table
// one.
func readLeaks(ctx context.Context, q querier, group string, readers []string, tables []schema.TableName) ([]leak, error) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = schema.Qualified(t.Schema, t.Name)
	}
	grantees := func(acl, kind, owner, priv string) string {
		return `SELECT CASE WHEN a.grantee = 0 THEN '' ELSE (SELECT rolname::text FROM pg_catalog.pg_roles WHERE oid = a.grantee) END
FROM pg_catalog.aclexplode(coalesce(` + acl + `, pg_catalog.acldefault('` + kind + `', ` + owner + `))) a
WHERE a.privilege_type = '` + priv + `' AND a.grantee <> ` + owner + ` AND (a.grantee = 0 OR a.grantee IN (SELECT oid FROM side))`
	}
	rows, err := q.Query(ctx, tenantSideSQL+`, dep(oid) AS (
	SELECT to_regclass(x)::oid FROM unnest($3::text[]) x WHERE to_regclass(x) IS NOT NULL
	UNION
	SELECT w.ev_class FROM dep JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = dep.oid AND d.classid = 'pg_catalog.pg_rewrite'::regclass
	JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid
), views AS (
	SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS name, false AS function, c.relowner AS owner,
		array(`+grantees("c.relacl", "r", "c.relowner", "SELECT")+`
			UNION SELECT CASE WHEN a.grantee = 0 THEN '' ELSE (SELECT rolname::text FROM pg_catalog.pg_roles WHERE oid = a.grantee) END
			FROM pg_catalog.pg_attribute t CROSS JOIN LATERAL pg_catalog.aclexplode(t.attacl) a
			WHERE t.attrelid = c.oid AND t.attacl IS NOT NULL AND a.privilege_type = 'SELECT' AND (a.grantee = 0 OR a.grantee IN (SELECT oid FROM side))
			ORDER BY 1) AS grantees
	FROM dep JOIN pg_catalog.pg_class c ON c.oid = dep.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('v', 'm')
	AND (c.relkind = 'm' OR NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'] OR c.reloptions @> ARRAY['security_invoker=on'], false))
), functions AS (
	SELECT p.oid::pg_catalog.regprocedure::text AS name, true AS function, p.proowner AS owner,
		array(`+grantees("p.proacl", "f", "p.proowner", "EXECUTE")+` ORDER BY 1) AS grantees
	FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles o ON o.oid = p.proowner JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
	WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema', $4, $5)
	AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e')
	AND (o.rolsuper OR o.rolbypassrls
		OR EXISTS (SELECT FROM dep JOIN pg_catalog.pg_class t ON t.oid = dep.oid WHERE t.relkind IN ('r', 'p') AND pg_catalog.pg_has_role(o.oid, t.relowner, 'USAGE'))
		OR EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = ANY($2::text[]) AND pg_catalog.pg_has_role(o.oid, r.oid, 'USAGE')))
)
SELECT x.name, x.function, pg_catalog.pg_has_role(current_user, x.owner, 'USAGE'), x.grantees
FROM (SELECT * FROM views UNION ALL SELECT * FROM functions) x
WHERE EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = $1::text) AND cardinality(x.grantees) > 0
ORDER BY x.function, x.name`, group, readers, names, InternalSchema, StagingSchema)
	if err != nil {
		return nil, fmt.Errorf("reading the views and functions tenants can use: %w", sanitize(err))
	}
	var out []leak
	var l leak
	_, err = pgx.ForEachRow(rows, []any{&l.name, &l.function, &l.mine, &l.grantees}, func() error { out = append(out, l); return nil })
	if err != nil {
		return nil, fmt.Errorf("reading the views and functions tenants can use: %w", sanitize(err))
	}
	return out, nil
}

// remove takes pgveil's tenant policies off the plan's tables.
func (s *tenancySetup) remove() error {
	for _, t := range s.plan.Tables() {
		var relOID uint32
		var rls bool
		err := s.tx.QueryRow(s.ctx, `SELECT c.oid, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, t.Table.Schema, t.Table.Name).Scan(&relOID, &rls)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading table %s: %w", tableLabel(t), sanitize(err))
		}
		have, err := s.policies(relOID)
		if err != nil {
			return fmt.Errorf("reading the policies of %s: %w", tableLabel(t), err)
		}
		if !rls && len(have) == 0 {
			continue
		}
		// The roles the tenant policies served lose the table first: without
		// row level security they would read every row.
		grantees, err := queryStrings(s.ctx, s.tx, `SELECT DISTINCT r.rolname::text FROM pg_policy p CROSS JOIN LATERAL unnest(p.polroles) u(oid)
JOIN pg_roles r ON r.oid = u.oid WHERE p.polrelid = $1 AND p.polname IN ('`+policyTenant+`', '`+policyShared+`', '`+policyImp+`') ORDER BY 1`, relOID)
		if err != nil {
			return err
		}
		for _, g := range grantees {
			if err := s.exec(`REVOKE ALL ON TABLE ` + tableIdent(t) + ` FROM ` + schema.QuoteIdent(g)); err != nil {
				return err
			}
		}
		for _, p := range have {
			if err := s.exec(`DROP POLICY ` + schema.QuoteIdent(p.name) + ` ON ` + tableIdent(t)); err != nil {
				return err
			}
		}
		var others int
		if err := s.tx.QueryRow(s.ctx, `SELECT count(*) FROM pg_policy WHERE polrelid = $1`, relOID).Scan(&others); err != nil {
			return fmt.Errorf("reading the policies of %s: %w", tableLabel(t), sanitize(err))
		}
		if rls && others == 0 && len(have) > 0 {
			if err := s.exec(`ALTER TABLE ` + tableIdent(t) + ` DISABLE ROW LEVEL SECURITY`); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxKnownTenants bounds the Applier's memory of tenant values known to
// have a role; past it the memory starts again (the function checks the
// catalog, so forgetting costs a lookup, never a role).
const maxKnownTenants = 100_000

// SetTenancy makes the Applier create the role of each tenant value it
// writes that may lack one, in the transaction that writes it: a new
// tenant's role and rows commit together. tn must have been set up with
// SetupTenancy on the target; nil turns this off.
func (a *Applier) SetTenancy(tn *Tenancy) {
	a.tenancy = tn
	a.tenantCols = map[*transform.TablePlan]int{}
	a.newTenants = map[string]struct{}{}
	a.knownTenant = map[string]struct{}{}
}

// noteTenant records the tenant value of a row of t written to the
// replica.
func (a *Applier) noteTenant(t *transform.TablePlan, row []schema.Value) error {
	idx, ok := a.tenantCols[t]
	if !ok {
		col, _, err := a.tenancy.tenantColumn(t)
		if err != nil {
			return err
		}
		idx = -1
		if col != nil {
			idx = slices.IndexFunc(t.Columns, func(p transform.ColumnPlan) bool { return p.Column.Name == col.Column.Name })
		}
		a.tenantCols[t] = idx
	}
	if idx < 0 || idx >= len(row) {
		return nil
	}
	v := row[idx]
	if v.State != schema.Present || len(v.Text) == 0 || len(a.tenancy.RolePrefix)+len(v.Text) > MaxRoleName {
		return nil
	}
	if _, ok := a.knownTenant[string(v.Text)]; ok {
		return nil
	}
	a.newTenants[string(v.Text)] = struct{}{}
	return nil
}

// queueTenants queues, before the checkpoint, the creation of the roles
// of the transaction's new tenant values.
func (a *Applier) queueTenants() {
	if len(a.newTenants) == 0 {
		return
	}
	vals := make([]string, 0, len(a.newTenants))
	for v := range a.newTenants {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	a.batch.ExecParams(a.tenancy.ensureCall(`$1::jsonb`), [][]byte{[]byte(jsonStrings(vals))}, nil, nil, nil)
	a.queued = append(a.queued, queued{what: "tenant roles"})
}

// tenantsCommitted remembers the committed transaction's tenant values.
func (a *Applier) tenantsCommitted() {
	if len(a.newTenants) == 0 {
		return
	}
	if len(a.knownTenant)+len(a.newTenants) > maxKnownTenants {
		clear(a.knownTenant)
	}
	for v := range a.newTenants {
		a.knownTenant[v] = struct{}{}
	}
	clear(a.newTenants)
}

// isSQLState reports whether err is a server error with one of codes.
func isSQLState(err error, codes ...string) bool {
	code := schema.SQLState(err)
	return code != "" && slices.Contains(codes, code)
}

// TenancyState is what status shows of the replica's tenant isolation.
type TenancyState struct {
	Roles int // tenant roles: PREFIX... members of the group
	// Unprotected are the existing tables among those asked about that
	// have no row level security and that tenants can read all the same
	// (someone turned it off, or granted the table to PUBLIC, to the group
	// or to a role a tenant login can use): there every tenant reads every
	// row.
	Unprotected []string
	// Leaky are the views tenants can read, and the SECURITY DEFINER
	// functions they can call, that would show them other tenants' rows
	// (see readLeaks), created or granted since pgveil started: granted to
	// the group, a tenant role, a tenant's login, a role a tenant login is
	// a member of, or PUBLIC.
	Leaky []string
}

// ReadTenancy reads the state of tn on the target for tables.
func ReadTenancy(ctx context.Context, conn *pgx.Conn, tn *Tenancy, tables []schema.TableName) (TenancyState, error) {
	var st TenancyState
	err := conn.QueryRow(ctx, `SELECT count(*) FROM `+tenantRolesFrom, tn.RolePrefix, tn.Group).Scan(&st.Roles)
	if err != nil {
		return st, fmt.Errorf("target: counting the tenant roles: %w", sanitize(err))
	}
	names := make([]string, len(tables))
	for i, n := range tables {
		names[i] = schema.Qualified(n.Schema, n.Name)
	}
	// Readable by a tenant: granted to PUBLIC or to a role a tenant login
	// can use (tenantSideSQL), the whole table or one column.
	rows, err := conn.Query(ctx, tenantSideSQL+`
SELECT u.i FROM unnest($3::text[]) WITH ORDINALITY u(x, i) JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(u.x)
WHERE NOT c.relrowsecurity AND EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = $1::text)
AND (`+grantedSQL("c.relacl", "r", "c.relowner", "SELECT")+` OR EXISTS (SELECT FROM pg_catalog.pg_attribute t CROSS JOIN LATERAL pg_catalog.aclexplode(t.attacl) a
	WHERE t.attrelid = c.oid AND t.attacl IS NOT NULL AND a.privilege_type = 'SELECT' AND (a.grantee = 0 OR a.grantee IN (SELECT oid FROM side))))
ORDER BY u.i`, tn.Group, tn.Readers, names)
	if err != nil {
		return st, fmt.Errorf("target: reading the replicated tables' row level security: %w", sanitize(err))
	}
	unprotected, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return st, fmt.Errorf("target: reading the replicated tables' row level security: %w", sanitize(err))
	}
	for _, i := range unprotected {
		st.Unprotected = append(st.Unprotected, tables[i-1].QualifiedName())
	}
	leaks, err := readLeaks(ctx, conn, tn.Group, tn.Readers, tables)
	if err != nil {
		return st, fmt.Errorf("target: %w", err)
	}
	for _, l := range leaks {
		st.Leaky = append(st.Leaky, l.name)
	}
	return st, nil
}
