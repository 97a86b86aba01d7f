package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"pgveil/replicate/source"
	"pgveil/replicate/target"
	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

// This file holds setup-sql: the psql scripts an administrator runs once,
// as a superuser, to create the least-privilege roles pgveil and the
// readers log in as. It never connects: everything comes from the rules
// file and the flags, and each script reads the name of the database it
// runs in itself (psql's \gset).

func runSetupSQL(_ context.Context, e *env, args []string) int {
	fs := newFlags(e, "setup-sql")
	file := configFlag(fs)
	part := fs.String("part", "all", "which `part` to print: source (production), target (analytics) or all (both, one after the other)")
	sourceRole := fs.String("source-role", "pgveil", "the `role` pgveil logs in as on production")
	targetRole := fs.String("target-role", "pgveil", "the `role` pgveil logs in as on the analytics database")
	timeout := fs.String("reader-timeout", "5min", "statement_timeout of the reader roles (a PostgreSQL `duration` such as 30s, 5min, 1h; 0 for none)")
	closeOthers := fs.Bool("close-other-databases", false, "take CONNECT on the analytics cluster's other databases (postgres, template1, ...) from PUBLIC, so that readers connect to the replica's database only; for a cluster that holds the replica only")
	if code := parseNoArgs(e, fs, args); code >= 0 {
		return code
	}
	var bad []error
	if *part != "source" && *part != "target" && *part != "all" {
		bad = append(bad, fmt.Errorf("--part %q: want source, target or all", *part))
	}
	if err := checkRoleName(*sourceRole); err != nil {
		bad = append(bad, fmt.Errorf("--source-role: %w", err))
	}
	if err := checkRoleName(*targetRole); err != nil {
		bad = append(bad, fmt.Errorf("--target-role: %w", err))
	}
	if !durationRE.MatchString(*timeout) {
		bad = append(bad, fmt.Errorf("--reader-timeout %q: want a PostgreSQL duration such as 30s, 5min or 1h (0 for none)", *timeout))
	}
	if len(bad) > 0 {
		for _, err := range bad {
			fmt.Fprintf(e.stderr, "pgveil setup-sql: %v\n", err)
		}
		fs.Usage()
		return exitUsage
	}
	cfg, code := loadRulesOffline(e, *file)
	if code >= 0 {
		return code
	}
	r, err := newSetupRoles(cfg, *sourceRole, *targetRole, *timeout)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil setup-sql: %s: %v\n", cfg.File, err)
		return exitProblems
	}
	r.closeOthers = *closeOthers
	switch *part {
	case "source":
		fmt.Fprint(e.stdout, r.sourceScript())
	case "target":
		fmt.Fprint(e.stdout, r.targetScript())
	default:
		fmt.Fprint(e.stdout, r.sourceScript())
		fmt.Fprintln(e.stdout)
		fmt.Fprintln(e.stdout, "-- ==========================================================================")
		fmt.Fprintln(e.stdout, "-- A second script, for the other server: save it to its own file.")
		fmt.Fprintln(e.stdout, "-- ==========================================================================")
		fmt.Fprintln(e.stdout)
		fmt.Fprint(e.stdout, r.targetScript())
	}
	return exitOK
}

// durationRE matches the statement_timeout values --reader-timeout takes.
var durationRE = regexp.MustCompile(`^[0-9]+ ?(us|ms|s|min|h|d)?$`)

// unsetMarker starts the value that stands for an unset ${VAR} when
// setup-sql loads the rules.
const unsetMarker = "pgveil_setup_sql_unset_"

// loadRulesOffline loads the rules file for a command that never
// connects: an unset ${VAR} stands for a placeholder (long enough for the
// secret, a valid slot or publication name), since DSNs and the secret
// are not used; one the file only uses as ${VAR:-default} gives the
// default. A reader or publication name made of a placeholder is an
// error. On failure it prints the problems and returns the exit code (-1
// on success).
func loadRulesOffline(e *env, file string) (*rules.Config, int) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, reportProblems(e, fmt.Errorf("reading rules: %w", err))
	}
	defaulted := onlyDefaulted(data)
	lookup := func(name string) (string, bool) {
		if v, ok := e.lookupEnv(name); ok {
			return v, true
		}
		if defaulted[name] {
			return "", true // expanded to the default
		}
		return unsetMarker + strings.ToLower(name) + "_placeholder", true
	}
	cfg, err := rules.Parse(file, data, lookup, transform.Builtin())
	if err != nil {
		return nil, reportProblems(e, err)
	}
	for _, n := range append([]string{cfg.Source.Publication}, cfg.Target.Readers...) {
		if strings.Contains(n, unsetMarker) {
			fmt.Fprintf(e.stderr, "pgveil setup-sql: %s: source.publication or a target.readers role comes from an environment variable that is not set: set it\n", file)
			return nil, exitProblems
		}
	}
	return cfg, -1
}

// varRefRE matches the start of a ${VAR} or ${VAR:-default}.
var varRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-)?`)

// onlyDefaulted is the set of variables data uses with a default only.
func onlyDefaulted(data []byte) map[string]bool {
	with, without := map[string]bool{}, map[string]bool{}
	for _, m := range varRefRE.FindAllSubmatch(data, -1) {
		if len(m[2]) > 0 {
			with[string(m[1])] = true
		} else {
			without[string(m[1])] = true
		}
	}
	for v := range without {
		delete(with, v)
	}
	return with
}

// checkRoleName rejects names CREATE ROLE refuses or would change.
func checkRoleName(name string) error {
	switch {
	case name == "":
		return errors.New("empty role name")
	case len(name) > 63:
		return fmt.Errorf("role name %s is longer than 63 bytes: PostgreSQL would cut it", schema.QuoteIdent(name))
	case strings.HasPrefix(name, "pg_"):
		return fmt.Errorf("role name %s: names starting with pg_ are reserved", schema.QuoteIdent(name))
	case slices.Contains([]string{"public", "none", "current_role", "current_user", "session_user"}, strings.ToLower(name)):
		return fmt.Errorf("role name %s is reserved", schema.QuoteIdent(name))
	}
	return nil
}

// setupRoles is what the setup-sql scripts are made from.
type setupRoles struct {
	file          string // the rules file, as given
	publication   string
	source        string // pgveil's login role on production
	target        string // pgveil's login role on the analytics database
	readers       []string
	tenancy       *rules.Tenancy // nil without a tenancy section
	readerTimeout string
	tables        []schema.TableName // in file order
	schemas       []string           // of tables, sorted
	rowFilters    bool               // a table has a where
	columnLists   bool               // source.publication_mode column_lists
	// closeOthers takes CONNECT on the cluster's other databases from
	// PUBLIC (--close-other-databases). Not the default: on a cluster
	// shared with other databases, roles of theirs (a monitoring agent
	// that connects to postgres, an application) may rely on PUBLIC's
	// CONNECT, and this script cannot know.
	closeOthers bool
	// direct, when set, makes targetScript plain SQL for a connection
	// that is no psql (the demo runs it with pgx): no psql variables or
	// meta-commands, the database named, passwords given.
	direct *directTarget
}

// directTarget is what psql would have supplied to the target script.
type directTarget struct {
	database  string
	passwords map[string]string // by role name
}

// database is the analytics database as the script names it.
func (r *setupRoles) database() string {
	if r.direct != nil {
		return schema.QuoteIdent(r.direct.database)
	}
	return `:"pgveil_database"`
}

// newSetupRoles checks the roles and collects the rules' tables.
func newSetupRoles(cfg *rules.Config, source, target, timeout string) (*setupRoles, error) {
	r := &setupRoles{file: cfg.File, publication: cfg.Source.Publication, source: source, columnLists: cfg.Source.PublicationMode == rules.ColumnLists,
		target: target, readers: cfg.Target.Readers, tenancy: cfg.Tenancy, readerTimeout: timeout}
	var errs []error
	for _, name := range r.readers {
		if err := checkRoleName(name); err != nil {
			errs = append(errs, fmt.Errorf("target.readers: %w", err))
		}
		if name == target {
			errs = append(errs, fmt.Errorf("target.readers: %s is also the writer role (--target-role): a reader must not be able to read schema pgveil", schema.QuoteIdent(name)))
		}
	}
	if cfg.Tenancy != nil {
		for _, name := range cfg.Tenancy.Impersonators {
			if err := checkRoleName(name); err != nil {
				errs = append(errs, fmt.Errorf("tenancy.impersonators: %w", err))
			}
			if name == target {
				errs = append(errs, fmt.Errorf("tenancy.impersonators: %s is also the writer role (--target-role)", schema.QuoteIdent(name)))
			}
		}
	}
	for _, t := range cfg.Tables {
		if t == nil {
			continue
		}
		r.tables = append(r.tables, schema.TableName{Schema: t.Schema, Name: t.Name})
		if !slices.Contains(r.schemas, t.Schema) {
			r.schemas = append(r.schemas, t.Schema)
		}
		r.rowFilters = r.rowFilters || t.Where != ""
	}
	slices.Sort(r.schemas)
	if len(r.tables) == 0 {
		errs = append(errs, errors.New("the rules name no table"))
	}
	return r, errors.Join(errs...)
}

// sourceScript is the production part.
func (r *setupRoles) sourceScript() string {
	var b strings.Builder
	src, pub := schema.QuoteIdent(r.source), schema.QuoteIdent(r.publication)
	pw := passwordVars([]string{r.source})
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	p("-- pgveil setup-sql --part source: production, the database pgveil replicates from.")
	p("-- Rules: %s (%d table%s in schema%s %s).", r.file, len(r.tables), plural(len(r.tables)), plural(len(r.schemas)), schema.QuoteIdents(r.schemas))
	p("--")
	p("-- Run it as a superuser, connected to the production database, with psql:")
	p("--   psql -X -v %s='...' -d DATABASE -f pgveil-source.sql", pw[0])
	p("-- It runs in one transaction and may be run again (after the rules change, say).")
	p("--")
	p("-- What role %s gets, and why:", src)
	p("--   LOGIN REPLICATION   the replication slot, the change stream and the exported snapshot;")
	p("--                       no SUPERUSER, CREATEDB, CREATEROLE or BYPASSRLS.")
	p("--   CONNECT, USAGE      this database and the schemas of the rules' tables.")
	p("--   SELECT              the rules' tables, and no other: the initial copy.")
	p("-- Nothing else: %s cannot write to production, and owns nothing there.", src)
	p("--")
	p("-- The publication %s is not created here. pgveil keeps it in line with the rules (column", pub)
	p("-- lists, row filters), but PostgreSQL lets only a table's owner add it to a publication.")
	p("-- So start pgveil once as %s: it stops, changing nothing, and prints the CREATE (or", src)
	p("-- ALTER) PUBLICATION statements to run in this database as a superuser (or as the tables'")
	p("-- owner, with CREATE on the database); run them and start pgveil again. When the rules")
	p("-- change, it asks the same way.")
	p("-- (To let pgveil change the publication itself, GRANT the tables' owner role to %s;", src)
	p("-- that also lets it write to the tables.)")
	p("")
	p(`\set ON_ERROR_STOP on`)
	p(`SELECT current_database() AS pgveil_database \gset`)
	p("BEGIN;")
	p("")
	p("-- 1. The role pgveil logs in as.")
	ensureRole(&b, r.source, "LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS", pw[0])
	p("")
	p("-- 2. This database and the schemas of the rules' tables.")
	p(`GRANT CONNECT ON DATABASE :"pgveil_database" TO %s;`, src)
	for _, s := range r.schemas {
		p("GRANT USAGE ON SCHEMA %s TO %s;", schema.QuoteIdent(s), src)
	}
	p("")
	p("-- 3. SELECT on exactly the rules' tables (the initial copy reads them).")
	p("GRANT SELECT ON TABLE")
	for i, t := range r.tables {
		sep := ","
		if i == len(r.tables)-1 {
			sep = ""
		}
		p("  %s%s", t.QualifiedName(), sep)
	}
	p("TO %s;", src)
	if r.rowFilters {
		p("")
		p("-- 4. Row filters (the rules have a where). pgveil reads the columns a where uses through a")
		p("--    temporary view, which needs TEMPORARY on the database (PUBLIC has it by default).")
		p("--    Under publication_mode column_lists, a where on key columns only is pushed down as the")
		p("--    publication's row filter after a test with a throwaway publication, which needs CREATE")
		p("--    on the database. Otherwise pgveil filters in its own process: the filtered rows leave")
		p("--    production (and are dropped by pgveil before masking). To push such filters down, also run:")
		p(`--      GRANT CREATE ON DATABASE :"pgveil_database" TO %s;`, src)
		p(`GRANT TEMPORARY ON DATABASE :"pgveil_database" TO %s;`, src)
	}
	if r.columnLists {
		p("")
		p("-- 5. publication_mode column_lists: PostgreSQL refuses to drop or retype a column a")
		p("--    publication's column list names. These event triggers take the tables an ALTER TABLE")
		p("--    names out of publication %s for that statement and put them back after it, in the", pub)
		p("--    migration's own transaction, with the same column lists less the dropped columns, so")
		p("--    that migrations run unchanged (docs/operations.md#migrations-under-column_lists).")
		p("--    They live in schema pgveil, owned by you (only a superuser may create event triggers).")
		b.WriteString(source.MigrationTriggersSQL(r.publication))
	}
	p("")
	p("COMMIT;")
	return b.String()
}

// targetScript is the analytics part.
func (r *setupRoles) targetScript() string {
	var b strings.Builder
	w := schema.QuoteIdent(r.target)
	var imps []string
	if r.tenancy != nil {
		imps = r.tenancy.Impersonators
	}
	pw := passwordVars(append(append([]string{r.target}, r.readers...), imps...))
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	internal := schema.QuoteIdent("pgveil")

	p("-- pgveil setup-sql --part target: the analytics database pgveil writes the masked copy to.")
	p("-- Rules: %s (%d table%s in schema%s %s).", r.file, len(r.tables), plural(len(r.tables)), plural(len(r.schemas)), schema.QuoteIdents(r.schemas))
	p("--")
	p("-- Run it as a superuser, connected to the analytics database, with psql:")
	vars := make([]string, len(pw))
	for i, v := range pw {
		vars[i] = "-v " + v + "='...'"
	}
	p("--   psql -X %s -d DATABASE -f pgveil-target.sql", strings.Join(vars, " "))
	p("-- It runs in one transaction and may be run again. Use it on a database that holds")
	p("-- the replica only: it takes CREATE and TEMPORARY on the database away from PUBLIC.")
	p("--")
	p("-- Role %s (the writer) owns the replicated schemas and schema pgveil (the checkpoint, which", w)
	p("-- no reader may see), and may create schemas here: a rules change copies tables again in")
	p("-- schema pgveil_staging, and enum types may live in schemas of their own. Each reader logs in,")
	p("-- reads the replicated tables, and can do nothing else: NOINHERIT, read-only transactions by")
	p("-- default, a statement_timeout, no CREATE anywhere and no access to schema pgveil. The read-only")
	p("-- default is a guard for tools, not a privilege: the grants are what stop a reader writing.")
	if r.tenancy != nil {
		p("--")
		p("-- Tenancy: the writer also has CREATEROLE, to create tenant roles (%s...) as tenants appear,", r.tenancy.RolePrefix)
		p("-- in group %s, which it creates itself. On PostgreSQL 15 and older CREATEROLE lets a role grant", schema.QuoteIdent(r.tenancy.Group))
		p("-- itself most non-superuser roles: keep this database on a cluster of its own. Impersonators")
		p("-- (Metabase connection impersonation) log in NOINHERIT and see rows only after SET ROLE to a tenant.")
	}
	p("")
	if r.direct == nil {
		p(`\set ON_ERROR_STOP on`)
		p(`SELECT current_database() AS pgveil_database \gset`)
	}
	p("BEGIN;")
	p("SET LOCAL lock_timeout = '5s';")
	p("")
	p("-- 1. The writer.")
	createRole := "NOCREATEROLE"
	if r.tenancy != nil {
		createRole = "CREATEROLE"
	}
	r.ensureRole(&b, r.target, "LOGIN NOSUPERUSER NOCREATEDB "+createRole+" NOREPLICATION NOBYPASSRLS", pw[0])
	p(`GRANT CONNECT, CREATE ON DATABASE %s TO %s;`, r.database(), w)
	for _, s := range append(slices.Clone(r.schemas), "pgveil") {
		p("CREATE SCHEMA IF NOT EXISTS %s AUTHORIZATION %s;", schema.QuoteIdent(s), w)
		p("ALTER SCHEMA %s OWNER TO %s;", schema.QuoteIdent(s), w)
	}
	p("REVOKE ALL ON SCHEMA %s FROM PUBLIC;", internal)
	p("")
	p("-- 2. Nobody else creates anything here: no object, no temporary table, and no large object or")
	p("--    WAL message either (PostgreSQL lets every role write those with these functions, even in a")
	p("--    read-only transaction). The per-table counters (exact row counts, inserts, updates, scans:")
	p("--    pg_stat_user_tables and the like) are kept for pg_read_all_stats (pg_monitor): a tenant would")
	p("--    read there how many rows all tenants have. NOTIFY cannot be taken away (docs/operations.md).")
	p(`REVOKE CREATE, TEMPORARY ON DATABASE %s FROM PUBLIC;`, r.database())
	for _, s := range r.schemas {
		p("REVOKE CREATE ON SCHEMA %s FROM PUBLIC;", schema.QuoteIdent(s))
	}
	for _, q := range target.LockDownSQL() {
		p("%s;", q)
	}
	p("")
	if r.closeOthers {
		p("-- The cluster's other databases (postgres, template1): closed to all but superusers and the roles")
		p("-- granted CONNECT there, so that readers connect to this database only (--close-other-databases).")
		p("-- Refused, changing nothing, when the cluster holds any other database: its roles may rely on PUBLIC.")
		p("%s", closeOtherDatabasesSQL)
	} else {
		p("-- The cluster's other databases keep PUBLIC's CONNECT (PostgreSQL's default): a reader can connect")
		p("-- to postgres and see its catalog, never the replica. On a cluster that holds the replica only, run")
		p("-- setup-sql with --close-other-databases to take it away; it is not done by default because other")
		p("-- roles of a shared cluster (a monitoring agent that connects to postgres) may rely on it.")
	}
	if len(r.readers) == 0 {
		p("")
		p("-- No reader: the rules' target.readers is empty.")
	}
	for i, name := range r.readers {
		rd := schema.QuoteIdent(name)
		p("")
		p("-- %d. Reader %s: SELECT on the replicated tables, now and later, and nothing else; REFERENCES", i+3, rd)
		p("--    too, so that Metabase sees their keys (it neither writes nor reads: docs/operations.md, Metabase),")
		p("--    and the per-table counters (Metabase's sync reads them; a reader reads every row anyway).")
		r.readOnlyLogin(&b, name, pw[i+1])
		for _, s := range r.schemas {
			p("GRANT USAGE ON SCHEMA %s TO %s;", schema.QuoteIdent(s), rd)
			p("REVOKE CREATE ON SCHEMA %s FROM %s;", schema.QuoteIdent(s), rd)
			p("GRANT %s ON ALL TABLES IN SCHEMA %s TO %s;", target.ReadPrivileges, schema.QuoteIdent(s), rd)
			p("ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %s GRANT %s ON TABLES TO %s;", w, schema.QuoteIdent(s), target.ReadPrivileges, rd)
		}
		p("REVOKE ALL ON SCHEMA %s FROM %s;", internal, rd)
		p("REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM %s;", internal, rd)
	}
	if len(r.readers) > 0 {
		p("%s;", target.ReaderStatsSQL(r.readers))
	}
	for i, name := range imps {
		im := schema.QuoteIdent(name)
		p("")
		p("-- %d. Impersonator %s: logs in, and reads a tenant's rows only after SET ROLE to it (pgveil grants", len(r.readers)+i+3, im)
		p("--    it every tenant role); no row without. pgveil grants it SELECT and REFERENCES on the tables")
		p("--    tenants read, which Metabase's sync needs, and sets its search_path (docs/operations.md, Metabase).")
		r.readOnlyLogin(&b, name, pw[len(r.readers)+i+1])
		p("REVOKE ALL ON SCHEMA %s FROM %s;", internal, im)
	}
	if len(r.readers) > 0 {
		p("")
		p("-- %d. Check: no reader can reach schema pgveil (a superuser or a member of %s could).", len(r.readers)+len(imps)+3, w)
		p("%s", r.readerCheckBlock())
	}
	p("")
	p("COMMIT;")
	return b.String()
}

// closeOtherDatabasesSQL takes CONNECT from PUBLIC on every database of
// the cluster but the current one that accepts connections (template0
// does not).
const closeOtherDatabasesSQL = `DO $closeothers$
DECLARE
  db name;
  others text;
BEGIN
  -- Only on a cluster that holds the replica alone: another database's
  -- roles (an application's, pgveil's own on production) may rely on
  -- PUBLIC's CONNECT, and taking it would lock them out.
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(datname), ', ' ORDER BY datname) INTO others
    FROM pg_catalog.pg_database
    WHERE datallowconn AND datname <> pg_catalog.current_database() AND datname NOT IN ('postgres', 'template1');
  IF others IS NOT NULL THEN
    RAISE EXCEPTION 'this cluster also holds %: --close-other-databases is for a cluster that holds the replica only (their roles may rely on PUBLIC''s CONNECT); run setup-sql without it, and revoke CONNECT yourself where you know it is safe', others;
  END IF;
  FOR db IN SELECT datname FROM pg_catalog.pg_database WHERE datallowconn AND datname <> pg_catalog.current_database() LOOP
    EXECUTE pg_catalog.format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', db);
  END LOOP;
END
$closeothers$;`

// readOnlyLogin writes what a reader and an impersonator share: a
// NOINHERIT login with no other attribute, the reader timeout, read-only
// transactions by default, CONNECT here and no CREATE or TEMPORARY.
func (r *setupRoles) readOnlyLogin(b *strings.Builder, name, passwordVar string) {
	id := schema.QuoteIdent(name)
	r.ensureRole(b, name, "LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS", passwordVar)
	fmt.Fprintf(b, "ALTER ROLE %s SET statement_timeout = %s;\n", id, schema.QuoteLiteral(r.readerTimeout))
	fmt.Fprintf(b, "ALTER ROLE %s SET default_transaction_read_only = on;\n", id)
	fmt.Fprintf(b, "GRANT CONNECT ON DATABASE %s TO %s;\n", r.database(), id)
	fmt.Fprintf(b, "REVOKE CREATE, TEMPORARY ON DATABASE %s FROM %s;\n", r.database(), id)
}

// readerCheckBlock is the DO block that fails when a reader can use
// schema pgveil or become the writer.
func (r *setupRoles) readerCheckBlock() string {
	names := make([]string, len(r.readers))
	for i, n := range r.readers {
		names[i] = schema.QuoteLiteral(n)
	}
	body := `
DECLARE
  reader name;
BEGIN
  FOREACH reader IN ARRAY ARRAY[` + strings.Join(names, ", ") + `]::name[] LOOP
    IF pg_catalog.has_schema_privilege(reader, 'pgveil', 'USAGE')
       OR pg_catalog.pg_has_role(reader, ` + schema.QuoteLiteral(r.target) + `, 'MEMBER') THEN
      RAISE EXCEPTION 'reader role % can reach schema pgveil: it must not be a superuser or a member of %', reader, ` + schema.QuoteLiteral(r.target) + `;
    END IF;
  END LOOP;
END
`
	tag := dollarTag(body)
	return "DO " + tag + body + tag + ";"
}

// ensureRole is the package's ensureRole, or, in direct mode, plain SQL
// that does the same with the password given.
func (r *setupRoles) ensureRole(b *strings.Builder, name, attrs, passwordVar string) {
	if r.direct == nil {
		ensureRole(b, name, attrs, passwordVar)
		return
	}
	id := schema.QuoteIdent(name)
	body := "\nBEGIN\n  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = " + schema.QuoteLiteral(name) + ") THEN\n    CREATE ROLE " + id + ";\n  END IF;\nEND\n"
	tag := dollarTag(body)
	fmt.Fprintf(b, "DO %s%s%s;\n", tag, body, tag)
	fmt.Fprintf(b, "ALTER ROLE %s WITH %s;\n", id, attrs)
	if pw, ok := r.direct.passwords[name]; ok {
		fmt.Fprintf(b, "ALTER ROLE %s PASSWORD %s;\n", id, schema.QuoteLiteral(pw))
	}
}

// ensureRole writes the psql lines that create role name when it is
// missing, give it exactly attrs and, when passwordVar is set, the
// password held in that psql variable, if given (never a literal).
func ensureRole(b *strings.Builder, name, attrs, passwordVar string) {
	id := schema.QuoteIdent(name)
	fmt.Fprintf(b, "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %s) AS pgveil_missing \\gset\n", schema.QuoteLiteral(name))
	fmt.Fprintf(b, "\\if :pgveil_missing\nCREATE ROLE %s;\n\\endif\n", id)
	fmt.Fprintf(b, "ALTER ROLE %s WITH %s;\n", id, attrs)
	if passwordVar == "" {
		return
	}
	fmt.Fprintf(b, "\\if :{?%s}\nALTER ROLE %s PASSWORD :'%s';\n\\else\n", passwordVar, id, passwordVar)
	fmt.Fprintf(b, "\\echo %s\n\\endif\n", psqlQuote("role "+id+" has no password yet: set one with \\password "+id+" in psql, or run this again with -v "+passwordVar+"=..."))
}

// passwordVars names the psql variable holding each role's password:
// the name in lower case, characters other than letters, digits and _ as
// _, then _password; a number tells apart names that come out the same.
func passwordVars(roles []string) []string {
	out := make([]string, len(roles))
	for i, role := range roles {
		var v strings.Builder
		for _, c := range strings.ToLower(role) {
			if c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
				v.WriteRune(c)
			} else {
				v.WriteByte('_')
			}
		}
		base := v.String()
		if base == "" || base[0] >= '0' && base[0] <= '9' {
			base = "role_" + base
		}
		name := base + "_password"
		for n := 2; slices.Contains(out[:i], name); n++ {
			name = fmt.Sprintf("%s_%d_password", base, n)
		}
		out[i] = name
	}
	return out
}

// psqlQuote quotes s as one argument of a psql meta-command.
func psqlQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// dollarTag is a dollar-quote tag that body does not contain.
func dollarTag(body string) string {
	tag := "$setup$"
	for n := 1; strings.Contains(body, tag); n++ {
		tag = fmt.Sprintf("$setup%d$", n)
	}
	return tag
}
