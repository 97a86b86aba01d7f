package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/cluster"
)

// GrowthOptions size the cost-growth scenarios: how pgveil's cost grows
// with the number of tables, the width of a table, and the tables one
// transaction touches. Each list is a curve; its points are measured in
// order.
type GrowthOptions struct {
	Tables       []int // table counts of the snapshot-by-tables curve
	RowsPerTable int   // rows in each of those tables
	Columns      []int // column counts of the snapshot-by-columns curve
	WideRows     int   // rows of each wide table
	Touched      []int // tables touched per transaction in the catch-up curve
	Transactions int   // transactions in each catch-up backlog
}

// The growth scenarios' names: one curve each. Report.Curves groups
// results by them.
const (
	growthByTables  = "growth: snapshot by tables"
	growthByColumns = "growth: snapshot by columns"
	growthByTouched = "growth: catch-up by tables per transaction"
)

// growthDB is the production database of the growth scenarios: their
// tables stay out of the example's database, so the other scenarios
// publish and copy what they always did.
const growthDB = "growth"

// Growth measures the cost-growth curves, pgveil alone (each point is
// compared with the previous one, not with a baseline).
func Growth(ctx context.Context, s *Site, o GrowthOptions, r *Report) error {
	src, err := s.Prod.CreateDB(ctx, growthDB)
	if err != nil {
		return err
	}
	g := &growth{s: s, src: src, o: o}
	began := time.Now()
	if err := g.seed(ctx); err != nil {
		return fmt.Errorf("growth: seeding: %w", err)
	}
	s.Log.Info("growth: seeded", "seconds", time.Since(began).Seconds())
	for _, n := range o.Tables {
		res, err := g.snapshot(ctx, fmt.Sprintf("growth_t%d", n), narrowTables(n), growthByTables, int64(n), fmt.Sprintf("pgveil, %d tables", n))
		if err != nil {
			return fmt.Errorf("growth: snapshot of %d tables: %w", n, err)
		}
		res.Note = fmt.Sprintf("process start to initial copy committed, %d rows per table", o.RowsPerTable)
		r.Add(res)
	}
	for _, c := range o.Columns {
		res, err := g.snapshot(ctx, fmt.Sprintf("growth_c%d", c), []string{wideTable(c)}, growthByColumns, int64(c), fmt.Sprintf("pgveil, %d columns", c))
		if err != nil {
			return fmt.Errorf("growth: snapshot of %d columns: %w", c, err)
		}
		res.Note = fmt.Sprintf("process start to initial copy committed, one table of %d rows", o.WideRows)
		r.Add(res)
		if res, err = g.rawWide(ctx, c); err != nil {
			return fmt.Errorf("growth: raw COPY pipe of %d columns: %w", c, err)
		}
		r.Add(res)
	}
	if len(o.Touched) > 0 {
		if err := g.catchUp(ctx, r); err != nil {
			return fmt.Errorf("growth: catch-up: %w", err)
		}
	}
	return nil
}

type growth struct {
	s   *Site
	src string // DSN of the growth database
	o   GrowthOptions
}

// narrowTable is the name of the i-th (from 1) table of the tables curve.
func narrowTable(i int) string { return fmt.Sprintf("g%04d", i) }

// narrowTables are the first n tables of the tables curve.
func narrowTables(n int) []string {
	t := make([]string, n)
	for i := range t {
		t[i] = narrowTable(i + 1)
	}
	return t
}

// wideTable is the name of the table of c columns.
func wideTable(c int) string { return fmt.Sprintf("w%d", c) }

// narrowColumns is every narrow table's columns and their rules: one of
// each common kind of masking.
const narrowColumns = `{id: keep, name: {fake: name}, email: hash, amount: {noise: 0.05}, created_at: {truncate: day}}`

// wideColumn is the i-th (from 1) column after the key of a wide table:
// text and integer by turns.
func wideColumn(i int) (name, typ, value, rule string) {
	if i%2 == 1 {
		return fmt.Sprintf("t%d", i), "text", fmt.Sprintf("'value ' || g || ' of %d'", i), "hash"
	}
	return fmt.Sprintf("n%d", i), "integer", fmt.Sprintf("(g * %d) %% 100000", i), "keep"
}

// seed creates the narrow tables (as many as the largest point of either
// curve that uses them), the wide tables and the marker.
func (g *growth) seed(ctx context.Context) error {
	narrow := 0
	if len(g.o.Tables) > 0 {
		narrow = slices.Max(g.o.Tables)
	}
	if len(g.o.Touched) > 0 {
		narrow = max(narrow, slices.Max(g.o.Touched))
	}
	// One DO block: a thousand round trips would cost more than the
	// tables.
	sql := fmt.Sprintf(`CREATE TABLE growth_marker (id bigint PRIMARY KEY);
DO $$
BEGIN
  FOR i IN 1..%d LOOP
    EXECUTE format('CREATE TABLE g%%s (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, amount numeric(12,2) NOT NULL, created_at timestamptz NOT NULL)', lpad(i::text, 4, '0'));
    EXECUTE format('INSERT INTO g%%s SELECT g, ''Person '' || g, ''p'' || g || ''@growth.example'', (g %%%% 100000) / 100.0, timestamptz ''2026-01-01'' + g * interval ''1 minute'' FROM generate_series(1, %d) g', lpad(i::text, 4, '0'));
  END LOOP;
END $$;`, narrow, g.o.RowsPerTable)
	for _, c := range g.o.Columns {
		exprs := []string{"g"}
		for i := 1; i < c; i++ {
			_, _, value, _ := wideColumn(i)
			exprs = append(exprs, value)
		}
		sql += fmt.Sprintf("\n%s;\nINSERT INTO %s SELECT %s FROM generate_series(1, %d) g;",
			wideTableSQL(c), wideTable(c), strings.Join(exprs, ", "), g.o.WideRows)
	}
	return cluster.Exec(ctx, g.src, sql)
}

// wideTableSQL creates the table of c columns.
func wideTableSQL(c int) string {
	cols := []string{"id bigint PRIMARY KEY"}
	for i := 1; i < c; i++ {
		name, typ, _, _ := wideColumn(i)
		cols = append(cols, name+" "+typ)
	}
	return fmt.Sprintf("CREATE TABLE %s (%s)", wideTable(c), strings.Join(cols, ", "))
}

// rawWide is the columns curve's baseline: the table of c columns through
// a plain COPY TO | COPY FROM pipe (no masking, no pgveil) into a table of
// the same shape on the analytics server. Its CPU per row beside pgveil's
// says which side pays for the width: a cost both pay (the servers' TOAST
// work on rows over about 2 kB) is not pgveil's. It is not a point of the
// curve (isPgveil).
func (g *growth) rawWide(ctx context.Context, c int) (Result, error) {
	name := fmt.Sprintf("growth_raw_c%d", c)
	dsn, err := g.s.NewTargetDB(ctx, name, false)
	if err != nil {
		return Result{}, err
	}
	defer g.s.Analytics.DropDB(context.Background(), name)
	if err := cluster.Exec(ctx, dsn, wideTableSQL(c)); err != nil {
		return Result{}, err
	}
	mark := g.s.cpuNow()
	began := time.Now()
	bytes, err := rawPipe(ctx, g.src, dsn, []string{wideTable(c)})
	if err != nil {
		return Result{}, err
	}
	res := Result{Scenario: growthByColumns, Subject: fmt.Sprintf("raw COPY pipe, %d columns", c), Size: int64(c),
		Rows: int64(g.o.WideRows), Bytes: bytes, Seconds: time.Since(began).Seconds(),
		Note: fmt.Sprintf("COPY TO STDOUT | COPY FROM STDIN of the same table of %d rows, no masking: the baseline of the columns curve", g.o.WideRows)}
	g.s.cpuSince(mark, &res)
	return res, nil
}

// config writes pgveil's rules for tables (and the marker).
func (g *growth) config(name string, tables []string, targetDSN string) (string, []string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "source: {dsn: \"${SOURCE_DSN}\", slot: %s, publication: %s}\ntarget: {dsn: \"${TARGET_DSN}\"}\nsecret: ${PGVEIL_SECRET}\ntables:\n", name, name)
	b.WriteString("  growth_marker:\n    columns: {id: keep}\n")
	for _, t := range tables {
		if strings.HasPrefix(t, "g") {
			fmt.Fprintf(&b, "  %s:\n    columns: %s\n", t, narrowColumns)
			continue
		}
		var c int
		fmt.Sscanf(t, "w%d", &c)
		cols := []string{"id: keep"}
		for i := 1; i < c; i++ {
			col, _, _, rule := wideColumn(i)
			cols = append(cols, col+": "+rule)
		}
		fmt.Fprintf(&b, "  %s:\n    columns: {%s}\n", t, strings.Join(cols, ", "))
	}
	return g.s.writeConfig(name, b.String(), g.src, targetDSN)
}

// snapshot times pgveil's initial copy of tables, from its start to its
// checkpoint, into a new analytics database, then removes everything.
func (g *growth) snapshot(ctx context.Context, name string, tables []string, scenario string, size int64, subject string) (Result, error) {
	dsn, err := g.s.NewTargetDB(ctx, name, false)
	if err != nil {
		return Result{}, err
	}
	defer g.s.Analytics.DropDB(context.Background(), name)
	cfg, env, err := g.config(name, tables, dsn)
	if err != nil {
		return Result{}, err
	}
	tgt, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return Result{}, err
	}
	defer tgt.Close(context.Background())
	mark := g.s.cpuNow()
	run, err := g.s.initialCopy(ctx, cfg, env, tgt, name)
	if err != nil {
		return Result{}, err
	}
	if err := dropSlotIn(ctx, g.src, name); err != nil {
		return Result{}, err
	}
	rows := int64(len(tables)) * int64(g.o.RowsPerTable)
	if scenario == growthByColumns {
		rows = int64(g.o.WideRows)
	}
	res := Result{Scenario: scenario, Subject: subject, Size: size, Rows: rows, Seconds: run.seconds, PeakRSS: run.rss, PgveilCPU: run.cpu}
	g.s.cpuSince(mark, &res)
	return res, nil
}

// catchUp copies the narrow tables the largest point touches, then for
// each point builds a backlog of transactions that each insert a row into
// that many tables, and times pgveil draining it.
func (g *growth) catchUp(ctx context.Context, r *Report) error {
	const name = "growth_catchup"
	tables := narrowTables(slices.Max(g.o.Touched))
	dsn, err := g.s.NewTargetDB(ctx, name, false)
	if err != nil {
		return err
	}
	defer g.s.Analytics.DropDB(context.Background(), name)
	defer dropSlotIn(context.Background(), g.src, name)
	cfg, env, err := g.config(name, tables, dsn)
	if err != nil {
		return err
	}
	tgt, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer tgt.Close(context.Background())
	p, err := g.s.StartPgveil(cfg, env)
	if err != nil {
		return err
	}
	err = waitUntil(ctx, p, 30*time.Minute, 20*time.Millisecond, "pgveil's initial copy", checkpointWritten(tgt, name))
	if stopErr := p.Stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return err
	}
	src, err := pgx.Connect(ctx, g.src)
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	nextID := int64(g.o.RowsPerTable)
	for point, k := range g.o.Touched {
		for range g.o.Transactions {
			nextID++
			var b strings.Builder
			for _, t := range tables[:k] {
				fmt.Fprintf(&b, "INSERT INTO %s VALUES (%d, 'Person %[2]d', 'p%[2]d@growth.example', 12.34, now());\n", t, nextID)
			}
			if _, err := src.Exec(ctx, b.String()); err != nil { // one Exec of several statements is one transaction
				return err
			}
		}
		marker := int64(point + 1)
		if _, err := src.Exec(ctx, `INSERT INTO growth_marker VALUES ($1)`, marker); err != nil {
			return err
		}
		mark := g.s.cpuNow()
		p, err := g.s.StartPgveil(cfg, env)
		if err != nil {
			return err
		}
		err = waitUntil(ctx, p, 30*time.Minute, 5*time.Millisecond, "pgveil to apply the marker", rowVisible(tgt, "growth_marker", marker))
		took := time.Since(p.StreamingSince())
		rss, _ := p.PeakRSS()
		if stopErr := p.Stop(); err == nil {
			err = stopErr
		}
		if err != nil {
			return err
		}
		res := Result{Scenario: growthByTouched, Subject: fmt.Sprintf("pgveil, %d tables/tx", k), Size: int64(k),
			Rows: int64(g.o.Transactions * k), Seconds: took.Seconds(), PeakRSS: rss, PgveilCPU: p.CPU().Seconds(),
			Note: fmt.Sprintf("streaming started to the backlog applied: %d transactions of one insert into each of %d tables", g.o.Transactions, k)}
		g.s.cpuSince(mark, &res)
		r.Add(res)
	}
	return nil
}
