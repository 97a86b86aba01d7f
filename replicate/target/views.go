package target

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
	"pgveil/transform"
)

// View is one of production's views (or materialized views) as the
// replica gets it, or is kept from it.
//
// Views are created over the masked tables, so they show masked values,
// and owned by pgveil's role. A plain view is created WITH
// (security_invoker = true): it reads the tables as the role that reads
// it, so row level security (tenancy) applies to the reader and no view
// reads past it. A materialized view is computed by its owner, whom row
// level security does not restrict: it is granted to the readers (who
// read every row anyway), never to tenants; and it is kept out when
// pgveil's role on the replica may read more than the replica's tables
// (a superuser, or a member of a pg_read_* or pg_monitor role), since its
// query would run with those privileges at every refresh.
type View struct {
	Name            schema.TableName
	Materialized    bool
	Definition      string // the SELECT, schema-qualified (source.View)
	SecurityBarrier bool
	// Hash identifies the definition (source.View.Hash).
	Hash string
	// Reads are the views of the same list it reads.
	Reads []schema.TableName
	// Tenants: the tenant group gets SELECT on it (a plain view whose
	// every table is one tenants read).
	Tenants bool
	// KeptOut says why the replica does not get it; "" when it does.
	KeptOut string
}

// ViewsRegistry is the internal table that records the views pgveil
// created on the replica and the ones it kept out, with why.
const ViewsRegistry = InternalSchema + ".views"

const viewsRegistrySQL = `CREATE TABLE IF NOT EXISTS ` + ViewsRegistry + ` (
	schema_name text, view_name text, materialized boolean NOT NULL, state text NOT NULL, reason text,
	hash text, reads text[], create_sql text[], ord integer NOT NULL, refreshed_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (schema_name, view_name))`

// View states in the registry.
const (
	ViewCreated = "created"
	ViewKeptOut = "kept_out"
)

// ViewsResult is what SyncViews did.
type ViewsResult struct {
	Created []string          // created now (or again, after a change)
	Dropped []string          // dropped: gone from production, changed, or now kept out
	Present []string          // on the replica after the sync
	KeptOut map[string]string // view -> why the replica does not have it
}

// privilegedRoles: pgveil's role being a member of one of them, a
// materialized view's query (run as its owner) could read what no reader
// may.
var privilegedRoles = []string{"pg_read_all_data", "pg_read_all_stats", "pg_read_all_settings", "pg_read_server_files", "pg_execute_server_program", "pg_monitor"}

// matviewsRefused says why pgveil's role may not own materialized views
// readers read, or "".
func matviewsRefused(ctx context.Context, q pgx.Tx) (string, error) {
	var super bool
	var member []string
	err := q.QueryRow(ctx, `SELECT r.rolsuper, array(SELECT x FROM unnest($1::text[]) x WHERE to_regrole(x) IS NOT NULL AND pg_has_role(current_user, x::regrole, 'USAGE') ORDER BY 1)
FROM pg_roles r WHERE r.rolname = current_user`, privilegedRoles).Scan(&super, &member)
	if err != nil {
		return "", fmt.Errorf("reading the current role: %w", sanitize(err))
	}
	switch {
	case super:
		return "pgveil's role on the replica is a superuser, and a materialized view's query runs as its owner at every refresh: give pgveil the role pgveil setup-sql creates", nil
	case len(member) > 0:
		return "pgveil's role on the replica is a member of " + strings.Join(member, ", ") + ", and a materialized view's query runs as its owner at every refresh: revoke it", nil
	}
	return "", nil
}

// createSQL is the statements that create v and grant it.
func (v *View) createSQL(readers []string, group string) []string {
	name := schema.Qualified(v.Name.Schema, v.Name.Name)
	var out []string
	if v.Materialized {
		out = append(out, `CREATE MATERIALIZED VIEW `+name+` AS `+v.Definition+` WITH NO DATA`)
	} else {
		opts := "security_invoker = true"
		if v.SecurityBarrier {
			opts += ", security_barrier = true"
		}
		out = append(out, `CREATE VIEW `+name+` WITH (`+opts+`) AS `+v.Definition)
	}
	if len(readers) > 0 {
		out = append(out, `GRANT SELECT ON `+name+` TO `+schema.QuoteIdents(readers))
	}
	if v.Tenants && group != "" && !v.Materialized {
		out = append(out, `GRANT SELECT ON `+name+` TO `+schema.QuoteIdent(group))
	}
	return out
}

// recorded is one row of the registry.
type recorded struct {
	materialized bool
	state        string
	hash         string
	reads        []string
	ord          int
	exists       bool // on the replica now, as a view of its kind
}

func viewKey(n schema.TableName) string { return n.Schema + "." + n.Name }

// SyncViews brings the replica's views in line with views (in an order
// where each follows the views it reads), in one transaction on conn:
// pgveil's views that production no longer has, whose definition or
// grants changed, or that are now kept out, are dropped (with pgveil's
// views that read them); then, unless dropOnly, the missing ones are
// created (materialized ones WITH NO DATA: RefreshViews fills them) and
// granted SELECT to readers and, for Tenants views, to group. A view
// whose CREATE fails is kept out with the failure's SQLSTATE (never its
// message, which may quote the definition's constants). Everything is
// recorded in pgveil.views. Views pgveil did not create are never
// touched.
//
// dropOnly is for before Setup: a view that reads a column the new rules
// no longer publish must go before Setup drops the column. It does
// nothing on a replica that has no pgveil.views yet.
func SyncViews(ctx context.Context, conn *pgx.Conn, views []View, readers []string, group string, dropOnly bool) (*ViewsResult, error) {
	res := &ViewsResult{KeptOut: map[string]string{}}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		res.Created, res.Dropped, res.Present = nil, nil, nil
		clear(res.KeptOut)
		return syncViews(ctx, tx, views, readers, group, dropOnly, res)
	})
	if err != nil {
		return nil, fmt.Errorf("views: %w", err)
	}
	return res, nil
}

func syncViews(ctx context.Context, tx pgx.Tx, views []View, readers []string, group string, dropOnly bool, res *ViewsResult) error {
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+lockTimeout+`'`); err != nil {
		return sanitize(err)
	}
	have, err := ensureViewsRegistry(ctx, tx, !dropOnly)
	if err != nil || !have {
		return err
	}
	vs := &viewSync{tx: tx, views: views, readers: readers, group: group, res: res}
	if vs.reg, err = readViewsRegistry(ctx, tx); err != nil {
		return err
	}
	if err := vs.decide(ctx); err != nil {
		return err
	}
	if err := vs.dropChanged(ctx); err != nil {
		return err
	}
	if dropOnly {
		return nil
	}
	if err := vs.createWanted(ctx); err != nil {
		return err
	}
	return vs.forgetGone(ctx)
}

// viewSync is one syncViews run: production's views, the registry of what
// the replica has, and what this run decides.
type viewSync struct {
	tx      pgx.Tx
	views   []View
	readers []string
	group   string
	res     *ViewsResult
	reg     map[string]*recorded
	want    map[string]*View  // views the replica should have
	stamp   map[string]string // the hash recorded: definition and grants
}

// ensureViewsRegistry reports whether the registry table exists, creating
// it when create is set.
func ensureViewsRegistry(ctx context.Context, tx pgx.Tx, create bool) (bool, error) {
	var have bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, ViewsRegistry).Scan(&have); err != nil {
		return false, fmt.Errorf("reading the catalog: %w", sanitize(err))
	}
	if have || !create {
		return have, nil
	}
	if _, err := tx.Exec(ctx, viewsRegistrySQL); err != nil {
		return false, fmt.Errorf("creating %s: %w", ViewsRegistry, sanitize(err))
	}
	return true, nil
}

// readViewsRegistry reads what pgveil recorded of each view, and whether
// the view is on the replica now as recorded (a view or a materialized
// view).
func readViewsRegistry(ctx context.Context, tx pgx.Tx) (map[string]*recorded, error) {
	reg := map[string]*recorded{}
	rows, err := tx.Query(ctx, `SELECT v.schema_name, v.view_name, v.materialized, v.state, coalesce(v.hash, ''), coalesce(v.reads, '{}'), v.ord,
	coalesce((SELECT c.relkind = CASE WHEN v.materialized THEN 'm' ELSE 'v' END FROM pg_class c WHERE c.oid = to_regclass(quote_ident(v.schema_name) || '.' || quote_ident(v.view_name))), false)
FROM `+ViewsRegistry+` v`)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ViewsRegistry, sanitize(err))
	}
	var n schema.TableName
	var r recorded
	_, err = pgx.ForEachRow(rows, []any{&n.Schema, &n.Name, &r.materialized, &r.state, &r.hash, &r.reads, &r.ord, &r.exists}, func() error {
		rr := r
		reg[viewKey(n)] = &rr
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ViewsRegistry, sanitize(err))
	}
	return reg, nil
}

// decide keeps out the materialized views the replica refuses, and
// stamps each wanted view with the hash of its definition and grants.
func (vs *viewSync) decide(ctx context.Context) error {
	refused := ""
	for _, v := range vs.views {
		if v.Materialized && v.KeptOut == "" {
			var err error
			if refused, err = matviewsRefused(ctx, vs.tx); err != nil {
				return err
			}
			break
		}
	}
	vs.want, vs.stamp = map[string]*View{}, map[string]string{}
	for i := range vs.views {
		v := &vs.views[i]
		k := viewKey(v.Name)
		if v.KeptOut == "" && v.Materialized && refused != "" {
			v.KeptOut = refused
		}
		if v.KeptOut == "" {
			vs.want[k] = v
			sum := sha256.Sum256([]byte(strings.Join(append([]string{v.Hash}, v.createSQL(vs.readers, vs.group)...), "\x00")))
			vs.stamp[k] = hex.EncodeToString(sum[:12])
		}
	}
	return nil
}

// dropChanged drops pgveil's views no longer wanted as they are, and
// those of pgveil's views that read them (readers of a view first).
func (vs *viewSync) dropChanged(ctx context.Context) error {
	dirty := map[string]bool{}
	for k, r := range vs.reg {
		if r.state == ViewCreated && (vs.want[k] == nil || vs.stamp[k] != r.hash || vs.want[k].Materialized != r.materialized) {
			dirty[k] = true
		}
	}
	for grew := true; grew; {
		grew = false
		for k, r := range vs.reg {
			if r.state != ViewCreated || dirty[k] {
				continue
			}
			for _, d := range r.reads {
				if dirty[d] {
					dirty[k], grew = true, true
					break
				}
			}
		}
	}
	var drop []string
	for k := range dirty {
		drop = append(drop, k)
	}
	slices.SortFunc(drop, func(a, b string) int { return vs.reg[b].ord - vs.reg[a].ord })
	for _, k := range drop {
		r := vs.reg[k]
		schemaName, name, _ := strings.Cut(k, ".")
		if r.exists {
			if err := dropView(ctx, vs.tx, schema.TableName{Schema: schemaName, Name: name}, r.materialized, ""); err != nil {
				return err
			}
			vs.res.Dropped = append(vs.res.Dropped, k)
		}
		if _, err := vs.tx.Exec(ctx, `DELETE FROM `+ViewsRegistry+` WHERE schema_name = $1 AND view_name = $2`, schemaName, name); err != nil {
			return fmt.Errorf("updating %s: %w", ViewsRegistry, sanitize(err))
		}
		delete(vs.reg, k)
	}
	return nil
}

// dropView drops one of pgveil's views (ifExists: "IF EXISTS " or "").
func dropView(ctx context.Context, tx pgx.Tx, n schema.TableName, materialized bool, ifExists string) error {
	kind := "VIEW"
	if materialized {
		kind = "MATERIALIZED VIEW"
	}
	if _, err := tx.Exec(ctx, `DROP `+kind+` `+ifExists+n.QualifiedName()); err != nil {
		return fmt.Errorf("dropping %s: %w", n.QualifiedName(), sanitize(err))
	}
	return nil
}

// createWanted creates the wanted views in production's order (a view
// after those it reads), keeps out those that read a view the replica
// could not create or whose CREATE fails there, and records each.
func (vs *viewSync) createWanted(ctx context.Context) error {
	present := map[string]bool{}
	for i := range vs.views {
		v := &vs.views[i]
		k := viewKey(v.Name)
		create := v.createSQL(vs.readers, vs.group)
		if v.KeptOut == "" {
			for _, d := range v.Reads {
				if !present[viewKey(d)] {
					v.KeptOut = fmt.Sprintf("reads %s, which the replica could not create", d.QualifiedName())
					break
				}
			}
		}
		state, reason := ViewCreated, ""
		switch r := vs.reg[k]; {
		case v.KeptOut != "":
			state, reason = ViewKeptOut, v.KeptOut
			if r != nil && r.state == ViewCreated && r.exists {
				// Created, now kept out for a reason found here.
				if err := dropView(ctx, vs.tx, v.Name, r.materialized, "IF EXISTS "); err != nil {
					return err
				}
			}
		case r != nil && r.state == ViewCreated && r.exists:
			// In place and unchanged.
		default:
			if code, err := createView(ctx, vs.tx, create); err != nil {
				return err
			} else if code != "" {
				state, reason = ViewKeptOut, fmt.Sprintf("CREATE on the replica failed (SQLSTATE %s): a type or operator it uses is missing there?", code)
				v.KeptOut = reason
			} else {
				vs.res.Created = append(vs.res.Created, k)
			}
		}
		if state == ViewCreated {
			present[k] = true
			vs.res.Present = append(vs.res.Present, k)
		} else {
			vs.res.KeptOut[k] = reason
		}
		if err := vs.record(ctx, i, state, reason, create); err != nil {
			return err
		}
	}
	return nil
}

// record writes the registry row of views[i].
func (vs *viewSync) record(ctx context.Context, i int, state, reason string, create []string) error {
	v := &vs.views[i]
	reads := make([]string, len(v.Reads))
	for j, d := range v.Reads {
		reads[j] = viewKey(d)
	}
	hash := vs.stamp[viewKey(v.Name)]
	if state != ViewCreated {
		hash, create = "", nil
	}
	_, err := vs.tx.Exec(ctx, `INSERT INTO `+ViewsRegistry+` (schema_name, view_name, materialized, state, reason, hash, reads, create_sql, ord, updated_at)
VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, ''), $7, $8, $9, now())
ON CONFLICT (schema_name, view_name) DO UPDATE SET materialized = EXCLUDED.materialized, state = EXCLUDED.state, reason = EXCLUDED.reason,
	hash = EXCLUDED.hash, reads = EXCLUDED.reads, create_sql = EXCLUDED.create_sql, ord = EXCLUDED.ord,
	refreshed_at = CASE WHEN `+ViewsRegistry+`.hash IS NOT DISTINCT FROM EXCLUDED.hash THEN `+ViewsRegistry+`.refreshed_at END,
	updated_at = CASE WHEN (`+ViewsRegistry+`.state, `+ViewsRegistry+`.reason, `+ViewsRegistry+`.hash) IS NOT DISTINCT FROM (EXCLUDED.state, EXCLUDED.reason, EXCLUDED.hash) THEN `+ViewsRegistry+`.updated_at ELSE now() END`,
		v.Name.Schema, v.Name.Name, v.Materialized, state, reason, hash, reads, create, i)
	if err != nil {
		return fmt.Errorf("updating %s: %w", ViewsRegistry, sanitize(err))
	}
	return nil
}

// forgetGone deletes the registry rows of views production no longer has
// (their views were dropped by dropChanged).
func (vs *viewSync) forgetGone(ctx context.Context) error {
	var names []string
	for _, v := range vs.views {
		names = append(names, viewKey(v.Name))
	}
	if _, err := vs.tx.Exec(ctx, `DELETE FROM `+ViewsRegistry+` WHERE NOT (schema_name || '.' || view_name = ANY($1::text[]))`, names); err != nil {
		return fmt.Errorf("updating %s: %w", ViewsRegistry, sanitize(err))
	}
	return nil
}

// createView runs a view's statements in a savepoint. A server error
// rolls the savepoint back and comes back as its SQLSTATE; any other
// error is returned.
func createView(ctx context.Context, tx pgx.Tx, stmts []string) (code string, err error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return "", sanitize(err)
	}
	for _, q := range stmts {
		if _, err := sp.Exec(ctx, q); err != nil {
			code := schema.SQLState(err)
			if code == "" {
				return "", sanitize(err)
			}
			if rerr := sp.Rollback(ctx); rerr != nil {
				return "", sanitize(rerr)
			}
			return code, nil
		}
	}
	return "", sanitize(sp.Commit(ctx))
}

// RefreshViews refreshes the materialized views pgveil created that were
// never refreshed or not for every, base ones first, each in its own
// transaction (REFRESH locks the view against readers while it runs; it
// waits at most 10 s for their queries to end). It returns the views
// refreshed. One whose query fails on the server does not hold back the
// others (production's definition may fail on the replica's rows every
// time); the failures come back together, each with its SQLSTATE only:
// the server's message may quote a value of a row (`relation "..." does
// not exist` for a value cast to regclass), which sanitize, going by the
// class, would let through. Any other failure (the connection) stops the
// round; the next tries again.
func RefreshViews(ctx context.Context, conn *pgx.Conn, every time.Duration) ([]string, error) {
	var have bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, ViewsRegistry).Scan(&have); err != nil || !have {
		return nil, sanitize(err)
	}
	due, err := queryPairs(ctx, conn, `SELECT schema_name, view_name FROM `+ViewsRegistry+`
WHERE materialized AND state = '`+ViewCreated+`' AND (refreshed_at IS NULL OR refreshed_at < now() - $1::interval) ORDER BY ord`, every.String())
	if err != nil {
		return nil, err
	}
	var done []string
	var failed []error
	for _, d := range due {
		name := schema.Qualified(d[0], d[1])
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, q := range []string{`SET LOCAL lock_timeout = '` + lockTimeout + `'`,
				`SET LOCAL statement_timeout = '` + strconv.FormatInt(refreshTimeout(every).Milliseconds(), 10) + `ms'`,
				`REFRESH MATERIALIZED VIEW ` + name} {
				if _, err := tx.Exec(ctx, q); err != nil {
					return sanitize(err)
				}
			}
			_, err := tx.Exec(ctx, `UPDATE `+ViewsRegistry+` SET refreshed_at = now() WHERE schema_name = $1 AND view_name = $2`, d[0], d[1])
			return sanitize(err)
		})
		var se *ServerError
		switch {
		case errors.As(err, &se) && se.Code == "57014" && ctx.Err() == nil:
			failed = append(failed, fmt.Errorf("refreshing materialized view %s: it took longer than %s and was cancelled (its query holds locks that re-copies wait for); it is tried again next round", name, refreshTimeout(every)))
			continue
		case errors.As(err, &se) && !strings.HasPrefix(se.Code, "08") && !strings.HasPrefix(se.Code, "57"):
			failed = append(failed, fmt.Errorf("refreshing materialized view %s: its query failed on the replica (SQLSTATE %s; the server's message is not shown, it may quote a value)", name, se.Code))
			continue
		case err != nil:
			return done, errors.Join(append(failed, fmt.Errorf("refreshing materialized view %s: %w", name, err))...)
		}
		done = append(done, d[0]+"."+d[1])
	}
	return done, errors.Join(failed...)
}

// refreshTimeout bounds one refresh: a materialized view's query holds
// locks on the tables it reads for as long as it runs, and pgveil's
// re-copies wait for them. A refresh that takes longer than the interval
// between refreshes is cancelled (and tried again next round, and
// reported each time), rather than holding them for ever.
func refreshTimeout(every time.Duration) time.Duration { return max(every, time.Second) }

// ViewState is a view as pgveil.views records it.
type ViewState struct {
	Schema, Name string
	Materialized bool
	State        string // ViewCreated or ViewKeptOut
	Reason       string
	RefreshedAt  *time.Time
}

// ReadViews returns what pgveil.views records, created views first; none
// on a replica without it.
func ReadViews(ctx context.Context, conn *pgx.Conn) ([]ViewState, error) {
	var have bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, ViewsRegistry).Scan(&have); err != nil || !have {
		return nil, sanitize(err)
	}
	rows, err := conn.Query(ctx, `SELECT schema_name, view_name, materialized, state, coalesce(reason, ''), refreshed_at FROM `+ViewsRegistry+`
ORDER BY state, schema_name, view_name`)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ViewsRegistry, sanitize(err))
	}
	var out []ViewState
	var v ViewState
	_, err = pgx.ForEachRow(rows, []any{&v.Schema, &v.Name, &v.Materialized, &v.State, &v.Reason, &v.RefreshedAt}, func() error {
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ViewsRegistry, sanitize(err))
	}
	return out, nil
}

// viewsBeforeSwitch drops pgveil's views that read live (directly or
// through other views), readers of a view first, so that SwitchSQL can
// drop the table; viewsAfterSwitch creates them again over the new table
// in the same transaction. Materialized ones come back empty, to be
// refreshed by the next round of RefreshViews. One that cannot be created
// again is recorded as kept out, with its SQLSTATE.
func viewsBeforeSwitch(live *transform.TablePlan) string {
	// Quoted with a tag the body does not hold: the table's name is
	// production's and may hold "$views$".
	body := `DECLARE r record; BEGIN
IF pg_catalog.to_regclass('` + ViewsRegistry + `') IS NULL OR pg_catalog.to_regclass(` + schema.QuoteLiteral(tableIdent(live)) + `) IS NULL THEN RETURN; END IF;
FOR r IN WITH RECURSIVE dep(oid) AS (
	SELECT pg_catalog.to_regclass(` + schema.QuoteLiteral(tableIdent(live)) + `)::oid
	UNION
	SELECT w.ev_class FROM dep JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = dep.oid
		AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
	JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid WHERE w.ev_class <> dep.oid
) SELECT v.schema_name, v.view_name, v.materialized FROM ` + ViewsRegistry + ` v
	JOIN dep ON dep.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(v.schema_name) || '.' || pg_catalog.quote_ident(v.view_name))
	WHERE v.state = '` + ViewCreated + `' ORDER BY v.ord DESC
LOOP
	EXECUTE pg_catalog.format('DROP %s %I.%I', CASE WHEN r.materialized THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END, r.schema_name, r.view_name);
END LOOP;
END `
	return `DO ` + schema.QuoteDollar(body)
}

func viewsAfterSwitch() string {
	return `DO $views$ DECLARE r record; q text; BEGIN
IF pg_catalog.to_regclass('` + ViewsRegistry + `') IS NULL THEN RETURN; END IF;
FOR r IN SELECT v.schema_name, v.view_name, v.create_sql FROM ` + ViewsRegistry + ` v
	WHERE v.state = '` + ViewCreated + `' AND pg_catalog.to_regclass(pg_catalog.quote_ident(v.schema_name) || '.' || pg_catalog.quote_ident(v.view_name)) IS NULL
	ORDER BY v.ord
LOOP
	BEGIN
		FOREACH q IN ARRAY r.create_sql LOOP EXECUTE q; END LOOP;
		UPDATE ` + ViewsRegistry + ` SET refreshed_at = NULL WHERE schema_name = r.schema_name AND view_name = r.view_name;
	EXCEPTION WHEN OTHERS THEN
		UPDATE ` + ViewsRegistry + ` SET state = '` + ViewKeptOut + `', reason = 'could not be created again after its table was copied again (SQLSTATE ' || SQLSTATE || ')', hash = NULL, updated_at = now()
		WHERE schema_name = r.schema_name AND view_name = r.view_name;
	END;
END LOOP;
END $views$`
}
