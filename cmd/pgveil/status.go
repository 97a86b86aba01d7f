package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"pgveil/replicate"
	"pgveil/replicate/source"
	"pgveil/replicate/target"
	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

// statusReport is what status prints, as text or as one JSON object. It
// holds names, positions, counts and times: never a value.
type statusReport struct {
	Config string       `json:"config"`
	Source *sourceState `json:"source,omitempty"`
	Slot   *slotState   `json:"slot,omitempty"`
	// Publication is how the live publication holds the tables.
	Publication *publicationState `json:"publication,omitempty"`
	Checkpoint  *checkpointState  `json:"checkpoint,omitempty"`
	Tables      []tableState      `json:"tables,omitempty"`
	Drift       *driftState       `json:"drift,omitempty"`
	// WaitingFor are the statements and grants the rules file needs on
	// production that pgveil's role lacks: a running pgveil keeps the
	// rules it had in force until they have run.
	WaitingFor []string      `json:"waiting_for,omitempty"`
	Tenancy    *tenancyState `json:"tenancy,omitempty"`
	// Views are production's views as pgveil.views records them: created
	// on the replica, or kept out with why.
	Views []viewState `json:"views,omitempty"`
	// ForeignKeys are the replica's foreign keys and the references left
	// out of them, as pgveil last recorded them.
	ForeignKeys *foreignKeysState `json:"foreign_keys,omitempty"`
	// Problems are why status exits 1: what it could not read, a missing
	// or lost slot, no checkpoint.
	Problems []string `json:"problems"`
	OK       bool     `json:"ok"`
}

type sourceState struct {
	Version    string `json:"version"`
	CurrentLSN string `json:"current_lsn"`
}

type slotState struct {
	Name              string `json:"name"`
	Exists            bool   `json:"exists"`
	Active            bool   `json:"active"`
	WALStatus         string `json:"wal_status,omitempty"`
	RetainedBytes     int64  `json:"retained_bytes"`
	ConfirmedFlushLSN string `json:"confirmed_flush_lsn,omitempty"`
	// BehindBytes is the current WAL position minus the confirmed one.
	BehindBytes int64 `json:"behind_bytes"`
}

type publicationState struct {
	Name   string `json:"name"`
	Exists bool   `json:"exists"`
	// Mode is the rules' source.publication_mode.
	Mode string `json:"mode"`
	// Locked are, by table, the columns the live publication's column
	// lists and row filters name: production's DROP COLUMN and ALTER
	// COLUMN ... TYPE fail on them.
	Locked map[string][]string `json:"locked_columns,omitempty"`
	// MigrationTriggers: the event triggers that let migrations drop and
	// retype listed columns are installed (setup-sql, column_lists).
	MigrationTriggers bool `json:"migration_triggers"`
}

type checkpointState struct {
	Found      bool       `json:"found"`
	LSN        string     `json:"lsn,omitempty"`
	CommitTime *time.Time `json:"commit_time,omitempty"` // of the last source commit applied
	AgeSeconds *float64   `json:"age_seconds,omitempty"` // since that commit
	LagBytes   *int64     `json:"lag_bytes,omitempty"`   // current WAL position minus the checkpoint
}

type tableState struct {
	Table     string `json:"table"`
	State     string `json:"state"` // created, altered, copied; "" before pgveil set it up
	Exists    bool   `json:"exists"`
	Rows      *int64 `json:"rows"` // nil when unknown
	Estimated bool   `json:"estimated,omitempty"`
}

type tenancyState struct {
	Group        string `json:"group"`
	Roles        int    `json:"roles"`         // tenant roles in the group
	TenantTables int    `json:"tenant_tables"` // tables tenants read through a tenant column
	SharedTables int    `json:"shared_tables"`
	HiddenTables int    `json:"hidden_tables"` // tables tenants cannot read
	// Unprotected are replicated tables tenants can read without row
	// level security.
	Unprotected []string `json:"unprotected,omitempty"`
	// LeakyViews are views tenants can read, and SECURITY DEFINER
	// functions they can call, that would show them other tenants' rows.
	LeakyViews []string `json:"leaky_views,omitempty"`
}

type viewState struct {
	View         string     `json:"view"`
	Materialized bool       `json:"materialized,omitempty"`
	State        string     `json:"state"`            // created, kept_out
	Reason       string     `json:"reason,omitempty"` // why it is kept out (names only)
	RefreshedAt  *time.Time `json:"refreshed_at,omitempty"`
}

type foreignKeysState struct {
	Present int               `json:"present"`
	Pending int               `json:"pending"` // waiting for a table being copied again
	LeftOut []target.KeyState `json:"left_out,omitempty"`
}

type driftState struct {
	UnruledColumns map[string][]string `json:"unruled_columns,omitempty"`
	MissingColumns map[string][]string `json:"missing_columns,omitempty"`
	ChangedTypes   map[string][]string `json:"changed_types,omitempty"`
	UnruledTables  []string            `json:"unruled_tables,omitempty"`
	MissingTables  []string            `json:"missing_tables,omitempty"`
	text           string
}

func runStatus(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "status")
	file := configFlag(fs)
	fast := fs.Bool("fast", false, "estimate the replica's row counts from the planner's statistics (pg_class.reltuples; unknown until a table is analyzed) instead of counting")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if code := parseNoArgs(e, fs, args); code >= 0 {
		return code
	}
	cfg, _, code := loadRules(e, *file)
	if code >= 0 {
		return code
	}
	r := readStatus(ctx, cfg, *fast, time.Now())
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(e.stderr, "pgveil status: %v\n", err)
			return exitProblems
		}
	} else {
		printStatus(e.stdout, r)
		for _, p := range r.Problems {
			fmt.Fprintf(e.stderr, "pgveil status: %s\n", p)
		}
	}
	if !r.OK {
		return exitProblems
	}
	return exitOK
}

// readStatus reads everything status shows; what it cannot read, or what
// needs a person, goes to Problems.
func readStatus(ctx context.Context, cfg *rules.Config, fast bool, now time.Time) *statusReport {
	r := &statusReport{Config: cfg.File, Problems: []string{}}
	src, current := r.readSourceSide(ctx, cfg)
	if src != nil {
		defer src.Close(context.Background())
	}
	var targetPlan *transform.Plan
	if tgt, err := openTarget(ctx, cfg); err != nil {
		r.problem("%v", err)
	} else {
		defer tgt.Close(context.Background())
		targetPlan = r.readTargetSide(ctx, tgt, cfg, fast, current, now)
	}
	if src != nil {
		r.readDrift(ctx, src, cfg, targetPlan)
	}
	r.slotProblems()
	r.OK = len(r.Problems) == 0
	return r
}

// problem adds a problem: status exits 1.
func (r *statusReport) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// readSourceSide reads production's version, slot, publication and what
// the rules wait for there. It returns the connection (nil when
// production could not be read; the caller closes it) and production's
// current WAL position.
func (r *statusReport) readSourceSide(ctx context.Context, cfg *rules.Config) (*pgx.Conn, pglogrepl.LSN) {
	src, err := openSource(ctx, cfg)
	if err != nil {
		r.problem("%v", err)
		return nil, 0
	}
	current, err := readSource(ctx, src, cfg.Source.Slot, r)
	if err != nil {
		r.problem("%v", err)
		src.Close(context.Background())
		return nil, 0
	}
	if err := readPublication(ctx, src, cfg, r); err != nil {
		r.problem("%v", err)
	} else if err := readWaiting(ctx, src, cfg, r); err != nil {
		r.problem("%v", err)
	} else if len(r.WaitingFor) > 0 {
		r.problem("the rules in %s need what pgveil's role lacks on production (see waiting for): a running pgveil keeps its earlier rules in force until it is done, a starting one cannot copy", cfg.File)
	}
	return src, current
}

// readTargetSide reads the analytics database: the checkpoint (and the
// lag behind current, production's position), the tables, foreign keys,
// tenancy and views. It returns the plan of the replica's columns as
// they are, for the drift check (nil when they could not be read).
func (r *statusReport) readTargetSide(ctx context.Context, tgt *pgx.Conn, cfg *rules.Config, fast bool, current pglogrepl.LSN, now time.Time) *transform.Plan {
	r.readCheckpoint(ctx, tgt, cfg, current, now)
	if err := readTables(ctx, tgt, cfg, fast, r); err != nil {
		r.problem("%v", err)
	}
	r.readForeignKeys(ctx, tgt)
	r.readTenancy(ctx, tgt, cfg)
	if vs, err := target.ReadViews(ctx, tgt); err != nil {
		r.problem("%v", err)
	} else {
		for _, v := range vs {
			r.Views = append(r.Views, viewState{View: v.Schema + "." + v.Name, Materialized: v.Materialized, State: v.State, Reason: v.Reason, RefreshedAt: v.RefreshedAt})
		}
	}
	// The replica's columns are what the running pipeline's plan
	// created: compare the source's types with them.
	cat, err := schema.ReadCatalog(ctx, tgt, ruleTableNames(cfg))
	if err != nil {
		return nil
	}
	var tps []*transform.TablePlan
	for _, n := range ruleTableNames(cfg) {
		if t := cat.Tables[n]; t != nil {
			tp := &transform.TablePlan{Table: t}
			for _, c := range t.Columns {
				tp.Columns = append(tp.Columns, transform.ColumnPlan{Column: c})
			}
			tps = append(tps, tp)
		}
	}
	return transform.NewPlan(tps)
}

// readCheckpoint reads the slot's checkpoint on the target: its position,
// the age of the commit it holds, and the bytes it is behind current.
func (r *statusReport) readCheckpoint(ctx context.Context, tgt *pgx.Conn, cfg *rules.Config, current pglogrepl.LSN, now time.Time) {
	pos, found, err := target.ReadCheckpoint(ctx, tgt, cfg.Source.Slot)
	switch {
	case err != nil:
		r.problem("%v", err)
	case !found:
		r.Checkpoint = &checkpointState{}
		r.problem("the target holds no checkpoint of slot %s: pgveil has not finished its initial copy (or never ran with this target)", cfg.Source.Slot)
	default:
		cp := &checkpointState{Found: true, LSN: pos.LSN.String()}
		if !pos.CommitTime.IsZero() {
			t := pos.CommitTime.UTC()
			age := max(0, now.Sub(t).Seconds())
			cp.CommitTime, cp.AgeSeconds = &t, &age
		}
		if current != 0 {
			lag := lsnDiff(current, pos.LSN)
			cp.LagBytes = &lag
		}
		r.Checkpoint = cp
	}
}

// readForeignKeys counts the replica's foreign keys by state, listing
// those left out.
func (r *statusReport) readForeignKeys(ctx context.Context, tgt *pgx.Conn) {
	keys, err := target.ReadForeignKeys(ctx, tgt)
	if err != nil {
		r.problem("%v", err)
		return
	}
	if len(keys) == 0 {
		return
	}
	fk := &foreignKeysState{}
	for _, k := range keys {
		switch k.State {
		case "present":
			fk.Present++
		case "pending":
			fk.Pending++
		default:
			fk.LeftOut = append(fk.LeftOut, k)
		}
	}
	r.ForeignKeys = fk
}

// readTenancy reads the tenant roles and what breaks isolation (tables
// without row level security, views that leak), when the rules have a
// tenancy section.
func (r *statusReport) readTenancy(ctx context.Context, tgt *pgx.Conn, cfg *rules.Config) {
	tn := replicate.TargetTenancy(cfg)
	if tn == nil {
		return
	}
	ts, err := target.ReadTenancy(ctx, tgt, tn, ruleTableNames(cfg))
	if err != nil {
		r.problem("%v", err)
		return
	}
	split := cfg.Split()
	r.Tenancy = &tenancyState{Group: tn.Group, Roles: ts.Roles, Unprotected: ts.Unprotected, LeakyViews: ts.Leaky,
		TenantTables: split.Tenant, SharedTables: split.Shared, HiddenTables: len(split.Hidden)}
	if len(ts.Leaky) > 0 {
		r.problem("tenants can read %s, and would see other tenants' rows there (materialized views, views without security_invoker, SECURITY DEFINER functions they can call; granted to PUBLIC, the group, a tenant role, a tenant's login or a role it holds): a running pgveil takes them away from tenants, or stops when it cannot", strings.Join(ts.Leaky, ", "))
	}
	if len(ts.Unprotected) > 0 {
		r.problem("tenants can read %s without row level security, so every tenant's rows: start pgveil to set it up again, and find who turned it off", strings.Join(ts.Unprotected, ", "))
	}
}

// readDrift compares production's schema with the rules and with the
// replica's columns (targetPlan, nil when unknown).
func (r *statusReport) readDrift(ctx context.Context, src *pgx.Conn, cfg *rules.Config, targetPlan *transform.Plan) {
	d, err := replicate.DetectDrift(ctx, src, cfg, targetPlan)
	if err != nil {
		r.problem("checking the source schema: %v", err)
		return
	}
	r.Drift = &driftState{UnruledColumns: d.Unruled, MissingColumns: d.Missing, ChangedTypes: d.TypeChanged,
		UnruledTables: d.NewTables, MissingTables: d.MissingTables, text: d.String()}
	for _, m := range []*map[string][]string{&r.Drift.UnruledColumns, &r.Drift.MissingColumns, &r.Drift.ChangedTypes} {
		if len(*m) == 0 {
			*m = nil
		}
	}
}

// slotProblems says what a missing or invalidated slot means.
func (r *statusReport) slotProblems() {
	s := r.Slot
	if s == nil {
		return
	}
	switch {
	case !s.Exists && r.Checkpoint != nil && r.Checkpoint.Found:
		r.problem("replication slot %s does not exist, but the target holds a checkpoint: changes made since are lost to pgveil; the replica must be copied again", s.Name)
	case !s.Exists:
		r.problem("replication slot %s does not exist: pgveil has not started (or the slot was dropped)", s.Name)
	case s.WALStatus == "lost":
		r.problem("replication slot %s is invalidated (wal_status = lost): production removed WAL pgveil had not read; the replica must be copied again", s.Name)
	}
}

// readSource fills in the source's version and the slot name's state, and
// returns the current WAL position.
func readSource(ctx context.Context, src *pgx.Conn, name string, r *statusReport) (pglogrepl.LSN, error) {
	srv, err := source.ReadServer(ctx, src)
	if err != nil {
		return 0, err
	}
	var text string
	if err := src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&text); err != nil {
		return 0, fmt.Errorf("reading the source's WAL position: %w", err)
	}
	current, err := pglogrepl.ParseLSN(text)
	if err != nil {
		return 0, fmt.Errorf("reading the source's WAL position: %w", err)
	}
	r.Source = &sourceState{Version: srv.VersionString(), CurrentLSN: current.String()}
	slot, err := replicate.ReadSlot(ctx, src, name)
	if err != nil {
		return current, err
	}
	s := &slotState{Name: name, Exists: slot.Exists, Active: slot.Active, WALStatus: slot.WALStatus, RetainedBytes: slot.RetainedBytes}
	if slot.Exists && slot.ConfirmedFlushLSN != 0 {
		s.ConfirmedFlushLSN = slot.ConfirmedFlushLSN.String()
		s.BehindBytes = lsnDiff(current, slot.ConfirmedFlushLSN)
	}
	r.Slot = s
	return current, nil
}

// readPublication fills in the live publication's state.
func readPublication(ctx context.Context, src *pgx.Conn, cfg *rules.Config, r *statusReport) error {
	locked, exists, err := source.PublicationLocks(ctx, src, cfg.Source.Publication)
	if err != nil {
		return err
	}
	if len(locked) == 0 {
		locked = nil
	}
	triggers, err := source.MigrationTriggersInstalled(ctx, src)
	if err != nil {
		return err
	}
	r.Publication = &publicationState{Name: cfg.Source.Publication, Exists: exists, Mode: cfg.Source.PublicationMode, Locked: locked, MigrationTriggers: triggers}
	return nil
}

// readWaiting fills in what the rules need on production that pgveil's
// role lacks. Rules that do not compile against the source are left to
// the drift report.
func readWaiting(ctx context.Context, src *pgx.Conn, cfg *rules.Config, r *statusReport) error {
	prep, err := replicate.PrepareRunning(ctx, src, cfg, nil)
	if err != nil {
		return nil
	}
	// A running pgveil copies only new tables and those whose rules
	// changed (every table, before its first copy).
	toCopy, err := replicate.TablesToCopy(ctx, cfg, prep)
	if err != nil {
		toCopy = nil
	}
	w, err := replicate.Prerequisites(ctx, src, prep, toCopy)
	if err != nil {
		return fmt.Errorf("checking pgveil's privileges: %w", err)
	}
	r.WaitingFor = w.Lines()
	return nil
}

// readTables reads pgveil.tables and the replica's row counts of every
// table the rules name.
func readTables(ctx context.Context, tgt *pgx.Conn, cfg *rules.Config, fast bool, r *statusReport) error {
	states, err := target.ReadTables(ctx, tgt)
	if err != nil {
		return err
	}
	byName := map[schema.TableName]string{}
	for _, s := range states {
		byName[schema.TableName{Schema: s.Schema, Name: s.Name}] = s.State
	}
	for _, n := range ruleTableNames(cfg) {
		ts := tableState{Table: n.QualifiedName(), State: byName[n]}
		ident := schema.Qualified(n.Schema, n.Name)
		var est *float64
		if err := tgt.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, (SELECT reltuples::float8 FROM pg_class WHERE oid = to_regclass($1))`, ident).Scan(&ts.Exists, &est); err != nil {
			return fmt.Errorf("target: %s: %w", ts.Table, err)
		}
		if ts.Exists {
			if fast {
				ts.Estimated = true
				if est != nil && *est >= 0 {
					rows := int64(*est)
					ts.Rows = &rows
				}
			} else {
				var rows int64
				if err := tgt.QueryRow(ctx, `SELECT count(*) FROM `+ident).Scan(&rows); err != nil {
					return fmt.Errorf("target: counting the rows of %s: %w", ts.Table, err)
				}
				ts.Rows = &rows
			}
		}
		r.Tables = append(r.Tables, ts)
	}
	return nil
}

// printStatus prints the report as aligned text.
func printStatus(w io.Writer, r *statusReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if s := r.Source; s != nil {
		fmt.Fprintf(tw, "source\tPostgreSQL %s, current WAL position %s\n", s.Version, s.CurrentLSN)
	}
	printSlot(tw, r.Slot)
	printPublication(w, tw, r.Publication)
	if len(r.WaitingFor) > 0 {
		fmt.Fprintf(tw, "waiting for\tthe rules need, in production, as a superuser (or the tables' owner):\n")
		for _, l := range r.WaitingFor {
			fmt.Fprintf(tw, "\t  %s\n", l)
		}
	}
	printCheckpoint(tw, r.Checkpoint)
	tw.Flush()
	printTables(w, r.Tables)
	if tn := r.Tenancy; tn != nil {
		fmt.Fprintf(w, "tenancy: %d tenant role%s in group %s; %d tenant table%s, %d shared, %d hidden from tenants\n",
			tn.Roles, plural(tn.Roles), tn.Group, tn.TenantTables, plural(tn.TenantTables), tn.SharedTables, tn.HiddenTables)
	}
	printViews(w, r.Views)
	if fk := r.ForeignKeys; fk != nil {
		fmt.Fprintf(w, "foreign keys: %d on the replica, %d waiting for a copy, %d reference%s left out\n", fk.Present, fk.Pending, len(fk.LeftOut), plural(len(fk.LeftOut)))
		for _, k := range fk.LeftOut {
			fmt.Fprintf(w, "  %s: %s\n", k.Reference, k.Reason)
		}
	}
	if d := r.Drift; d != nil {
		if d.text == "" {
			fmt.Fprintln(w, "drift: none (the source matches the rules)")
		} else {
			fmt.Fprintln(w, "drift: the source has changed; what no rule names is not replicated:")
			for _, l := range strings.Split(strings.TrimRight(d.text, "\n"), "\n") {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
	}
}

// printSlot prints the slot's line (nil: nothing).
func printSlot(tw *tabwriter.Writer, s *slotState) {
	switch {
	case s == nil:
	case !s.Exists:
		fmt.Fprintf(tw, "slot\t%s: does not exist\n", s.Name)
	default:
		active := "inactive (pgveil is not connected)"
		if s.Active {
			active = "active"
		}
		fmt.Fprintf(tw, "slot\t%s: %s, wal_status %s, retains %s of WAL\n", s.Name, active, statusDash(s.WALStatus), statusBytes(s.RetainedBytes))
		if s.ConfirmedFlushLSN != "" {
			fmt.Fprintf(tw, "\tconfirmed flush %s, %s behind the current position\n", s.ConfirmedFlushLSN, statusBytes(s.BehindBytes))
		}
	}
}

// printPublication prints how the publication holds the tables, and
// what production cannot do to the columns it lists (nil: nothing).
func printPublication(w io.Writer, tw *tabwriter.Writer, p *publicationState) {
	switch {
	case p == nil:
	case !p.Exists:
		fmt.Fprintf(tw, "publication\t%s: does not exist (publication_mode %s)\n", p.Name, p.Mode)
	case len(p.Locked) == 0:
		fmt.Fprintf(tw, "publication\t%s: tables published whole (publication_mode %s): production can drop and retype any column\n", p.Name, p.Mode)
	default:
		what := "as publication_mode column_lists asks"
		if p.Mode != rules.ColumnLists {
			what = "although publication_mode is " + p.Mode + ": pgveil lifts them when it starts, or logs the statements that do"
		}
		cannot := "production cannot drop or retype (unless the migration triggers of pgveil setup-sql are installed)"
		if p.MigrationTriggers {
			cannot = "the migration triggers are installed: production drops and retypes these as without pgveil"
		}
		fmt.Fprintf(tw, "publication\t%s: column lists or row filters on %d table%s (%s); %s:\n", p.Name, len(p.Locked), plural(len(p.Locked)), what, cannot)
		tw.Flush()
		printLocked(w, p.Locked)
	}
}

// printCheckpoint prints the checkpoint's line (nil: nothing).
func printCheckpoint(tw *tabwriter.Writer, c *checkpointState) {
	switch {
	case c == nil:
	case !c.Found:
		fmt.Fprintf(tw, "checkpoint\tnone\n")
	default:
		line := c.LSN
		if c.CommitTime != nil {
			line += fmt.Sprintf(", source commit %s (%s ago)", c.CommitTime.Format("2006-01-02 15:04:05 MST"),
				(time.Duration(*c.AgeSeconds * float64(time.Second))).Round(time.Second))
		}
		if c.LagBytes != nil {
			line += fmt.Sprintf(", lag %s", statusBytes(*c.LagBytes))
		}
		fmt.Fprintf(tw, "checkpoint\t%s\n", line)
	}
}

// printTables prints the replicated tables with their state and rows.
func printTables(w io.Writer, tables []tableState) {
	if len(tables) == 0 {
		return
	}
	fmt.Fprintln(w, "tables:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rowsTitle := "ROWS"
	for _, t := range tables {
		if t.Estimated {
			rowsTitle = "ROWS (estimated)"
		}
	}
	fmt.Fprintf(tw, "  TABLE\tSTATE\t%s\n", rowsTitle)
	for _, t := range tables {
		state, rows := statusDash(t.State), "-"
		switch {
		case !t.Exists:
			state = "absent"
		case t.Rows != nil:
			rows = fmt.Sprint(*t.Rows)
		default:
			rows = "unknown"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Table, state, rows)
	}
	tw.Flush()
}

func statusDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lsnDiff is a - b in bytes, 0 when b is ahead.
func lsnDiff(a, b pglogrepl.LSN) int64 {
	if b >= a {
		return 0
	}
	return int64(a - b)
}

// statusBytes formats a byte count: "512 B", "1.5 KiB", "12.0 MiB".
func statusBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= 1024
		if f < 1024 || u == "TiB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return ""
}

// printViews lists production's views: those on the replica, then those
// kept out with why.
func printViews(w io.Writer, views []viewState) {
	if len(views) == 0 {
		return
	}
	var created, kept []viewState
	for _, v := range views {
		if v.State == target.ViewCreated {
			created = append(created, v)
		} else {
			kept = append(kept, v)
		}
	}
	fmt.Fprintf(w, "views: %d of production's view%s on the replica, %d kept out\n", len(created), plural(len(views)), len(kept))
	for _, v := range created {
		line := v.View
		if v.Materialized {
			line += " (materialized, "
			if v.RefreshedAt == nil {
				line += "not refreshed yet)"
			} else {
				line += "refreshed " + v.RefreshedAt.UTC().Format("2006-01-02 15:04:05 MST") + ")"
			}
		}
		fmt.Fprintf(w, "  %s\n", line)
	}
	for _, v := range kept {
		fmt.Fprintf(w, "  %s: kept out: %s\n", v.View, v.Reason)
	}
}
