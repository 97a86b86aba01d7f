package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/replicate"
	"pgveil/replicate/source"
	"pgveil/rules"
	"pgveil/rules/scan"
	"pgveil/schema"
	"pgveil/transform"
)

// This file holds validate's online mode and what the commands that
// connect to the databases share: the -c flag, loading the rules,
// connecting without ever showing a password, and printing what Prepare
// found wrong.

// loadRules loads the rules file; on failure it prints the problems and
// returns the exit code (-1 on success).
func loadRules(e *env, file string) (*rules.Config, *transform.Registry, int) {
	reg := transform.Builtin()
	cfg, err := rules.Load(file, e.lookupEnv, reg)
	if err != nil {
		return nil, nil, reportProblems(e, err)
	}
	return cfg, reg, -1
}

// openSource connects to the source with the pipeline's session settings.
// The error never holds the DSN's password.
func openSource(ctx context.Context, cfg *rules.Config) (*pgx.Conn, error) {
	dsn := cfg.Source.DSN.Reveal()
	conn, err := replicate.ConnectSource(ctx, dsn)
	if err != nil {
		return nil, scrubPassword(err, dsn)
	}
	return conn, nil
}

// openTarget connects to the analytics database with the same session
// settings as the source, so that values read back compare byte for byte
// with values masked from the source.
func openTarget(ctx context.Context, cfg *rules.Config) (*pgx.Conn, error) {
	dsn := cfg.Target.DSN.Reveal()
	conn, err := replicate.ConnectTarget(ctx, dsn)
	if err != nil {
		return nil, scrubPassword(err, dsn)
	}
	return conn, nil
}

// scrubPassword replaces the DSN's passwords in err's message: drivers
// and servers may quote connection parameters.
func scrubPassword(err error, dsn string) error {
	cc, perr := pgconn.ParseConfig(dsn)
	if perr != nil {
		return err
	}
	msg := err.Error()
	changed := false
	if pw := cc.Password; len(pw) >= 3 && strings.Contains(msg, pw) {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
		changed = true
	}
	if !changed {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}

// dsnHasPassword reports whether dsn, as written, holds a password: a
// password in a URL's user information or a password= keyword. (One from
// PGPASSWORD or a password file is not in it.)
func dsnHasPassword(dsn string) bool {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if _, set := u.User.Password(); set {
			return true
		}
		return u.Query().Has("password")
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		// A URL Go cannot parse: look for user:password@.
		rest := dsn[strings.Index(dsn, "://")+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			return strings.Contains(rest[:at], ":")
		}
		return strings.Contains(rest, "password=")
	}
	return keywordPassword.MatchString(dsn)
}

// keywordPassword finds password= in a keyword/value DSN.
var keywordPassword = regexp.MustCompile(`(^|\s)password\s*=`)

// scrubbedError is an error whose message had a password taken out.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// printPrepareError prints what Prepare found wrong: rules problems as
// FILE:LINE:COL: table.column: message, prerequisite problems as
// FILE: table: message, anything else as it is. It returns the number of
// errors printed (at least 1).
func printPrepareError(e *env, cmd string, cfg *rules.Config, err error, hints map[string]string) int {
	var rp rules.Problems
	var pe *replicate.ProblemsError
	switch {
	case errors.As(err, &rp):
		for _, p := range rp {
			line := p.String()
			if h, ok := hints[p.Table+"."+p.Column]; ok && isUnruled(p) {
				line += "; suggested: " + h
			}
			fmt.Fprintln(e.stderr, line)
		}
		return max(1, len(rp.Errors()))
	case errors.As(err, &pe):
		for _, p := range pe.Problems {
			fmt.Fprintf(e.stderr, "%s: %s\n", cfg.File, p.String())
		}
		return max(1, len(pe.Problems))
	}
	fmt.Fprintf(e.stderr, "pgveil %s: %v\n", cmd, err)
	return 1
}

// isUnruled reports whether p is Compile's "column has no rule" problem.
func isUnruled(p rules.Problem) bool {
	return !p.Warning && p.Kind == rules.KindUnruled
}

// validateOnline checks the rules against the source: Prepare compiles
// them against the catalog and checks the prerequisites.
func validateOnline(ctx context.Context, e *env, cfg *rules.Config, reg *transform.Registry) int {
	src, err := openSource(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil validate: %v\n", err)
		return exitProblems
	}
	defer src.Close(context.Background())
	prep, err := replicate.Prepare(ctx, src, cfg, reg)
	if err == nil {
		for _, w := range prep.Warnings {
			fmt.Fprintln(e.stderr, w.String())
		}
		refProbs, model, rerr := checkReferencesOnline(ctx, src, cfg)
		if rerr != nil || len(refProbs) > 0 {
			printReferenceProblems(e, refProbs)
			n := len(refProbs)
			if rerr != nil {
				fmt.Fprintf(e.stderr, "pgveil validate: %v\n", rerr)
				n++
			}
			fmt.Fprintf(e.stderr, "%d problem%s\n", n, plural(n))
			return exitProblems
		}
		n := len(prep.Plan.Tables())
		fmt.Fprintf(e.stdout, "%s: OK: %s (online: %d table%s checked against the source)\n", cfg.File, summarize(cfg), n, plural(n))
		printTenancy(e, cfg)
		fmt.Fprintln(e.stdout, referenceSummary(cfg, model))
		triggers, err := source.MigrationTriggersInstalled(ctx, src)
		if err != nil {
			fmt.Fprintf(e.stderr, "pgveil validate: %v\n", err)
			return exitProblems
		}
		printPublicationMode(e.stdout, prep.Publication, triggers)
		if code := warnDerived(ctx, e, src, cfg); code >= 0 {
			return code
		}
		// The rules are valid; what pgveil's role lacks to put them in
		// force is for a superuser to run, not a problem of the file.
		w, err := replicate.Prerequisites(ctx, src, prep, nil)
		if err != nil {
			n := printPrepareError(e, "validate", cfg, err, nil)
			fmt.Fprintf(e.stderr, "%d problem%s\n", n, plural(n))
			return exitProblems
		}
		printWaiting(e.stdout, w)
		return exitOK
	}
	var rp rules.Problems
	if !errors.As(err, &rp) {
		n := printPrepareError(e, "validate", cfg, err, nil)
		fmt.Fprintf(e.stderr, "%d problem%s\n", n, plural(n))
		return exitProblems
	}
	// The rules do not compile: Prepare stopped before the prerequisites.
	// Suggest rules for the unruled columns, and check the prerequisites
	// of the tables that exist, so that every problem shows at once.
	cat, cerr := schema.ReadCatalog(ctx, src, ruleTableNames(cfg))
	var hints map[string]string
	var herr error
	if cerr == nil {
		hints, herr = suggestions(ctx, src, cfg, reg, cat, rp)
	}
	n := printPrepareError(e, "validate", cfg, err, hints)
	if herr != nil {
		fmt.Fprintf(e.stderr, "pgveil validate: %v\n", herr)
		n++
	}
	// The references are checked too: they need no compiled plan.
	if refProbs, _, rerr := checkReferencesOnline(ctx, src, cfg); rerr != nil {
		fmt.Fprintf(e.stderr, "pgveil validate: %v\n", rerr)
		n++
	} else {
		printReferenceProblems(e, refProbs)
		n += len(refProbs)
	}
	if cerr != nil {
		fmt.Fprintf(e.stderr, "pgveil validate: %v\n", cerr)
		n++
	} else if probs, perr := prerequisites(ctx, src, cfg, cat); perr != nil {
		fmt.Fprintf(e.stderr, "pgveil validate: %v\n", perr)
		n++
	} else {
		for _, p := range probs {
			fmt.Fprintf(e.stderr, "%s: %s\n", cfg.File, p.String())
		}
		n += len(probs)
	}
	fmt.Fprintf(e.stderr, "%d problem%s\n", n, plural(n))
	return exitProblems
}

// printPublicationMode says how the rules' publication holds the tables
// and, for column_lists, which columns production could then not drop or
// retype.
func printPublicationMode(w io.Writer, spec *source.PublicationSpec, triggers bool) {
	locked := spec.LockedColumns()
	if !spec.ColumnLists {
		fmt.Fprintf(w, "publication %s: migration_safe: tables are published whole, so production can drop and retype any column; pgveil removes the columns no rule publishes, and the rows a where excludes, before anything is written\n",
			schema.QuoteIdent(spec.Name))
		return
	}
	fmt.Fprintf(w, "publication %s: column_lists: dropped and unruled columns never leave production", schema.QuoteIdent(spec.Name))
	if len(locked) == 0 {
		fmt.Fprintln(w, " (no table needs a column list or row filter: production can drop and retype any column)")
		return
	}
	if triggers {
		fmt.Fprintln(w, "; the migration triggers are installed, so production's DROP COLUMN and ALTER COLUMN ... TYPE work on these published columns too (docs/operations.md#migrations-under-column_lists):")
	} else {
		fmt.Fprintln(w, "; production's DROP COLUMN and ALTER COLUMN ... TYPE will fail on these columns while they are published, unless the migration triggers of pgveil setup-sql are installed (docs/operations.md#migrations-under-column_lists):")
	}
	printLocked(w, locked)
}

// printWaiting says what pgveil's role lacks on production to put the
// rules in force, as statements for a superuser.
func printWaiting(w io.Writer, wait *replicate.Waiting) {
	if wait == nil {
		fmt.Fprintln(w, "privileges: pgveil's role has what these rules need on production (SELECT on every table; the publication holds them, or pgveil may change it)")
		return
	}
	fmt.Fprintln(w, "privileges: before pgveil can put these rules in force (a running pgveil keeps its earlier rules streaming until then),")
	for _, l := range strings.Split(wait.String(), "\n") {
		fmt.Fprintln(w, "  "+l)
	}
	fmt.Fprintln(w, "  (pgveil setup-sql --part source prints the whole least-privilege script)")
}

// printLocked prints locked columns by table, tables sorted.
func printLocked(w io.Writer, locked map[string][]string) {
	for _, t := range slices.Sorted(maps.Keys(locked)) {
		fmt.Fprintf(w, "  %s: %s\n", t, schema.QuoteIdents(locked[t]))
	}
}

// ruleTableNames lists the tables the rules name.
func ruleTableNames(cfg *rules.Config) []schema.TableName {
	names := make([]schema.TableName, 0, len(cfg.Tables))
	for _, t := range cfg.Tables {
		if t != nil {
			names = append(names, schema.TableName{Schema: t.Schema, Name: t.Name})
		}
	}
	return names
}

// prerequisites runs the source's checks on the tables of cat (without a
// compiled plan: only their names matter to the checks).
func prerequisites(ctx context.Context, src *pgx.Conn, cfg *rules.Config, cat *schema.Catalog) ([]source.Problem, error) {
	srv, err := source.ReadServer(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("checking the prerequisites: %w", err)
	}
	slot, err := replicate.ReadSlot(ctx, src, cfg.Source.Slot)
	if err != nil {
		return nil, fmt.Errorf("checking the prerequisites: %w", err)
	}
	var tps []*transform.TablePlan
	for _, n := range ruleTableNames(cfg) {
		if t := cat.Tables[n]; t != nil {
			tps = append(tps, &transform.TablePlan{Table: t})
		}
	}
	return source.Check(srv, cat, transform.NewPlan(tps), slot.Exists), nil
}

// suggestions maps "table.column" (as problems name them) of every
// unruled column to the rule pgveil scan proposes for it, from the
// catalog of the rules' schemas without sampling values (as `pgveil scan
// --sample 0` does), kept only if it builds for the column (drop
// otherwise). A rule scan proposes with a caveat (a keep to check) says
// it.
func suggestions(ctx context.Context, src *pgx.Conn, cfg *rules.Config, reg *transform.Registry, cat *schema.Catalog, rp rules.Problems) (map[string]string, error) {
	keys, err := cfg.Keys()
	if err != nil {
		return nil, nil
	}
	want := map[string]bool{}
	for _, p := range rp {
		if isUnruled(p) {
			want[p.Table+"."+p.Column] = true
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	var schemas []string
	for _, n := range ruleTableNames(cfg) {
		if !slices.Contains(schemas, n.Schema) {
			schemas = append(schemas, n.Schema)
		}
	}
	_, _, ruled, err := proposeRules(ctx, src, schemas, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("suggesting rules: %w", err)
	}
	out := map[string]string{}
	for _, r := range ruled {
		n := schema.TableName{Schema: r.Table.Schema, Name: r.Table.Name}
		t := cat.Tables[n]
		for j, c := range r.Table.Columns {
			k := n.QualifiedName() + "." + schema.QuoteIdent(c.Name)
			if !want[k] || t == nil || t.Column(c.Name) == nil {
				continue
			}
			out[k] = suggestRule(*t.Column(c.Name), r.Proposals[j], reg, keys)
		}
	}
	return out, nil
}

// suggestRule is the scanner's proposal p for col, if it builds for the
// column, else drop (hash, or keep, for a key column, which may only be
// keep or hash).
func suggestRule(col schema.Column, p scan.Proposal, reg *transform.Registry, keys *transform.Keys) string {
	builds := func(text string) bool {
		r, err := rules.ParseRule(text, reg)
		if err != nil {
			return false
		}
		_, err = reg.Build(r, col, keys)
		return err == nil
	}
	if builds(p.Rule) {
		if p.Rule == "keep" && p.Reason != "" {
			return p.Rule + " (" + p.Reason + ")"
		}
		return p.Rule
	}
	if col.PrimaryKey {
		if builds("hash") {
			return "hash"
		}
		return "keep"
	}
	return "drop"
}

// warnDerived warns of derived columns (a tsvector, a generated column, a
// column a trigger computes) the rules keep while a column they are built
// from is masked. It returns an exit code on failure, -1 otherwise.
func warnDerived(ctx context.Context, e *env, src *pgx.Conn, cfg *rules.Config) int {
	derived, err := scan.DerivedColumns(ctx, src)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil validate: %v\n", err)
		return exitProblems
	}
	for _, p := range scan.CheckDerived(cfg, derived) {
		fmt.Fprintln(e.stderr, p.String())
	}
	return -1
}
