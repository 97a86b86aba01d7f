package replicate

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/internal/pgtest"
	"pgveil/rules"
)

// Production's migrations, run one after another while pgveil streams
// and live traffic inserts, updates and deletes in every replicated
// table, in each publication mode (docs/operations.md, "Publication
// modes" and "Schema changes in production"). After each migration:
//
//  1. it did in production what it does without pgveil (under
//     column_lists, the DROP COLUMN and ALTER COLUMN ... TYPE of a listed
//     column fail as documented, pgveil streams on, and the documented
//     ways round are taken);
//  2. the traffic's UPDATEs and DELETEs go on working;
//  3. the replica equals mask(production), once an operator has done what
//     the log asks (a rule renamed or removed, and a reload);
//  4. no unruled or dropped column, and no value the traffic writes into
//     one (a canary), is in the replica or in pgveil's log;
//  5. pgveil follows the change by itself, or its log says what to do.
func TestMigrations(t *testing.T) {
	for _, mode := range []string{rules.MigrationSafe, rules.ColumnLists} {
		t.Run(mode, func(t *testing.T) { testMigrations(t, mode) })
	}
}

// migCanary is written by the traffic into every unruled and dropped
// column; nothing else in the test or in pgveil spells it.
const migCanary = "QZJ-CANARY-VXK"

const migSchema = `
CREATE TYPE mig_tier AS ENUM ('free', 'pro');
CREATE DOMAIN mig_email AS text;
CREATE TABLE acct (
  id bigserial PRIMARY KEY,
  email text,
  contact mig_email,
  name text,
  code text NOT NULL DEFAULT gen_random_uuid()::text,
  tier mig_tier NOT NULL DEFAULT 'free',
  parent_id bigint,
  n int NOT NULL DEFAULT 0,
  secret text
);
CREATE TABLE cols (
  id bigserial PRIMARY KEY,
  n int NOT NULL DEFAULT 0,
  secret text,
  keep_c text,
  hash_c text,
  drop_c text,
  ren_c text,
  i int,
  vc varchar(20),
  txt_num text,
  num numeric(8,2)
);
CREATE TABLE ren_tbl (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0, secret text, v text);
CREATE TABLE drop_tbl (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0, secret text, v text);
CREATE SEQUENCE pt_id_seq;
CREATE TABLE pt (
  id bigint NOT NULL DEFAULT nextval('pt_id_seq'),
  bucket int NOT NULL DEFAULT (random() < 0.5)::int,
  n int NOT NULL DEFAULT 0,
  secret text,
  v text,
  PRIMARY KEY (id, bucket)
) PARTITION BY LIST (bucket);
CREATE TABLE pt_0 PARTITION OF pt FOR VALUES IN (0);
CREATE TABLE pt_1 PARTITION OF pt FOR VALUES IN (1);
CREATE TABLE pt_3 PARTITION OF pt FOR VALUES IN (3);
CREATE TABLE pt_4 PARTITION OF pt FOR VALUES IN (4);

INSERT INTO acct (email, contact, name, code, tier, parent_id, secret)
SELECT 'a' || g || '@x.org', 'c' || g || '@x.org', 'Name ' || g, 'code' || g, (ARRAY['free', 'pro'])[1 + g % 2]::mig_tier,
       CASE WHEN g > 5 THEN 1 + g % 5 END, '` + migCanary + `-seed'
FROM generate_series(1, 200) g;
INSERT INTO cols (secret, keep_c, hash_c, drop_c, ren_c, i, vc, txt_num, num)
SELECT '` + migCanary + `-seed', 'k' || g, 'h' || g, '` + migCanary + `-seed', 'r' || g, g, 'vc' || g, g::text, g * 1.5
FROM generate_series(1, 100) g;
INSERT INTO ren_tbl (secret, v) SELECT '` + migCanary + `-seed', 'v' || g FROM generate_series(1, 50) g;
INSERT INTO drop_tbl (secret, v) SELECT '` + migCanary + `-seed', 'v' || g FROM generate_series(1, 50) g;
INSERT INTO pt (bucket, secret, v) SELECT (ARRAY[0, 1, 3, 4])[1 + g % 4], '` + migCanary + `-seed', 'v' || g FROM generate_series(1, 120) g;
`

// migRules are the rules of the suite, as an operator edits them.
type migRules struct {
	tables []string
	cols   map[string][][2]string // table: (column, rule) in order
}

func newMigRules() *migRules {
	r := &migRules{cols: map[string][][2]string{}}
	r.addTable("acct", "id: keep", "email: hash", "contact: keep", "name: {fake: name}", "code: keep", "tier: keep", "parent_id: keep", "n: keep", "secret: drop")
	r.addTable("cols", "id: keep", "n: keep", "secret: drop", "keep_c: keep", "hash_c: hash", "drop_c: drop", "ren_c: keep",
		"i: keep", "vc: keep", "txt_num: keep", "num: keep")
	r.addTable("ren_tbl", "id: keep", "n: keep", "secret: drop", "v: hash")
	r.addTable("drop_tbl", "id: keep", "n: keep", "secret: drop", "v: hash")
	r.addTable("pt", "id: keep", "bucket: keep", "n: keep", "secret: drop", "v: keep")
	return r
}

func (r *migRules) addTable(table string, cols ...string) {
	r.tables = append(r.tables, table)
	for _, c := range cols {
		name, rule, _ := strings.Cut(c, ": ")
		r.cols[table] = append(r.cols[table], [2]string{name, rule})
	}
}

func (r *migRules) removeTable(table string) {
	r.tables = slices.DeleteFunc(r.tables, func(t string) bool { return t == table })
	delete(r.cols, table)
}

func (r *migRules) renameTable(from, to string) {
	r.tables[slices.Index(r.tables, from)] = to
	r.cols[to] = r.cols[from]
	delete(r.cols, from)
}

// set changes a column's rule; an empty rule removes it.
func (r *migRules) set(table, col, rule string) {
	cs := r.cols[table]
	for i := range cs {
		if cs[i][0] == col {
			if rule == "" {
				r.cols[table] = slices.Delete(cs, i, i+1)
			} else {
				cs[i][1] = rule
			}
			return
		}
	}
	panic("no rule for " + table + "." + col)
}

func (r *migRules) renameColumn(table, from, to string) {
	for i := range r.cols[table] {
		if r.cols[table][i][0] == from {
			r.cols[table][i][0] = to
			return
		}
	}
	panic("no rule for " + table + "." + from)
}

// replicated are the columns of table the rules put in the replica.
func (r *migRules) replicated(table string) []string {
	var out []string
	for _, c := range r.cols[table] {
		if c[1] != "drop" {
			out = append(out, c[0])
		}
	}
	return out
}

func (r *migRules) yaml() string {
	var b strings.Builder
	for _, t := range r.tables {
		fmt.Fprintf(&b, "  %s:\n    columns: {", t)
		for i, c := range r.cols[t] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(c[0] + ": " + c[1])
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// migTraffic inserts, updates and deletes rows of every table it knows,
// round after round, writing the canary into the unruled and dropped
// columns. Any failure is a failure of production's writes: the test
// fails with it.
type migTraffic struct {
	t      *testing.T
	mu     sync.Mutex // held for a round; pause holds it
	tables []string
	rounds atomic.Int64
	failed atomic.Pointer[error]
	cancel context.CancelFunc
	done   chan struct{}
}

func startMigTraffic(t *testing.T, dsn string, tables ...string) *migTraffic {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &migTraffic{t: t, tables: tables, cancel: cancel, done: make(chan struct{})}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(tr.done)
		defer conn.Close(context.Background())
		for i := int64(1); ctx.Err() == nil; i++ {
			if err := tr.round(ctx, conn, i); err != nil {
				if ctx.Err() == nil {
					tr.failed.Store(&err)
				}
				return
			}
			tr.rounds.Store(i)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(tr.stop)
	return tr
}

func (tr *migTraffic) round(ctx context.Context, conn *pgx.Conn, i int64) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err // stopped while this round waited for the lock
	}
	canary := fmt.Sprintf("%s-%d", migCanary, i)
	for _, table := range tr.tables {
		set, where := "", "TRUE"
		switch table {
		case "acct":
			set = ", name = 'Upd ' || $2::text, email = 'u' || $2::text || '@x.org'"
		case "cols":
			set = ", i = i + 1, vc = left(vc || 'x', 15)"
		case "pt":
			// Partitions 0 and 1 only: the rows of those the partition
			// steps attach, detach or drop must reach the replica (or
			// leave it) by pgveil's doing, not by an UPDATE.
			set, where = ", v = 'u' || $2::text", "bucket IN (0, 1)"
		case "ren_tbl", "ren_tbl2", "drop_tbl", "new_tbl":
			set = ", v = 'u' || $2::text"
		}
		stmts := []string{
			`INSERT INTO ` + table + ` (secret, unruled_note) VALUES ($1, $1)`,
			`UPDATE ` + table + ` SET n = n + 1, secret = $1, unruled_note = $1` + set + ` WHERE id % 5 = $2 % 5 AND ` + where,
			// The fourth newest row: the traffic's own, seeded rows stay.
			`DELETE FROM ` + table + ` WHERE id IN (SELECT id FROM ` + table + ` WHERE ` + where + ` ORDER BY id DESC OFFSET 3 LIMIT 1)`,
		}
		for j, q := range stmts {
			var args []any
			switch j {
			case 0:
				args = []any{canary}
			case 1:
				args = []any{canary, i}
			}
			if _, err := conn.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("production traffic, round %d: %s: %w", i, q, err)
			}
		}
	}
	return nil
}

func (tr *migTraffic) err() error {
	if p := tr.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// stop ends the traffic after the round under way, whose statements have
// then all returned, committed. It does not cancel a statement: pgx would
// give up the connection at once and send a cancel request in the
// background, and the statement, in production, may still commit after
// stop returned, and after the marker of the sync that follows.
func (tr *migTraffic) stop() {
	tr.mu.Lock()
	tr.cancel()
	tr.mu.Unlock()
	<-tr.done
}

// pause waits for the round under way and holds the traffic until resume.
func (tr *migTraffic) pause()  { tr.mu.Lock() }
func (tr *migTraffic) resume() { tr.mu.Unlock() }

// setTables changes the tables of the next rounds.
func (tr *migTraffic) setTables(tables ...string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.tables = tables
}

// migSuite is one mode's run.
type migSuite struct {
	e     *e2e
	mode  string
	rules *migRules
	tr    *migTraffic
}

const migMarkerRules = "\n  pgveil_marker:\n    columns: {id: keep, n: keep}\n"

func testMigrations(t *testing.T, mode string) {
	rl := newMigRules()
	e := newE2E(t, migSchema, rl.yaml())
	e.mode = mode
	m := &migSuite{e: e, mode: mode, rules: rl}
	ctx := context.Background()
	e.start()
	e.sync()
	e.verify()

	// step runs one migration as a subtest; the suite stops at the first
	// that fails, since the next ones build on it.
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		ok := t.Run(name, func(st *testing.T) {
			parent := e.t
			e.t = st
			defer func() { e.t = parent }()
			f(st)
		})
		if !ok {
			t.FailNow()
		}
	}

	// The traffic lives as long as the mode's test, not one step's.
	startTraffic := func() {
		m.tr = startMigTraffic(t, e.srcDSN, "acct", "cols", "ren_tbl", "drop_tbl", "pt")
	}
	step("add_column_nullable", func(t *testing.T) {
		mark := m.logMark()
		for _, table := range []string{"acct", "cols", "ren_tbl", "drop_tbl", "pt"} {
			e.exec(`ALTER TABLE ` + table + ` ADD COLUMN unruled_note text`)
			e.exec(`UPDATE `+table+` SET unruled_note = $1 WHERE id % 2 = 0`, migCanary+"-added")
		}
		startTraffic()
		m.waitLog("the unruled column reported", mark, "write rules for it", "unruled columns in public.acct: unruled_note")
		m.settle()
	})

	step("add_column_volatile_default", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`ALTER TABLE acct ADD COLUMN added_uuid uuid DEFAULT gen_random_uuid(), ADD COLUMN added_rand float8 DEFAULT random()`)
		m.waitLog("the new columns reported", mark, "write rules for it", "unruled columns in public.acct: added_rand, added_uuid")
		m.settle()
	})

	step("add_column_constant_default", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`ALTER TABLE acct ADD COLUMN added_const text DEFAULT '` + migCanary + `-default'`)
		m.waitLog("the new column reported", mark, "write rules for it", "added_const")
		m.settle()
	})

	step("add_column_not_null_default", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`ALTER TABLE acct ADD COLUMN added_nn int NOT NULL DEFAULT 7`)
		m.waitLog("the new column reported", mark, "write rules for it", "added_nn")
		m.settle()
	})

	step("drop_unruled_column", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`ALTER TABLE acct DROP COLUMN added_rand`)
		m.settle()
		m.noErrors(mark)
	})

	step("add_drop_index", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`CREATE INDEX acct_name_idx ON acct (name)`)
		m.tr.waitRounds(e, 2)
		e.exec(`DROP INDEX acct_name_idx`)
		m.settle()
		m.noErrors(mark)
	})

	step("create_index_concurrently", func(t *testing.T) {
		mark := m.logMark()
		// One statement at a time: CONCURRENTLY refuses a transaction.
		e.exec(`CREATE INDEX CONCURRENTLY acct_n_idx ON acct (n)`)
		m.tr.waitRounds(e, 2)
		e.exec(`DROP INDEX CONCURRENTLY acct_n_idx`)
		m.settle()
		m.noErrors(mark)
	})

	step("add_drop_foreign_key", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`ALTER TABLE acct ADD CONSTRAINT acct_parent_fk FOREIGN KEY (parent_id) REFERENCES acct (id) ON DELETE SET NULL`)
		// The cascade changes rows the statement does not name.
		e.exec(`DELETE FROM acct WHERE id = 3`)
		m.settle()
		e.exec(`ALTER TABLE acct DROP CONSTRAINT acct_parent_fk`)
		m.settle()
		m.noErrors(mark)
	})

	step("add_drop_check_constraint", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`ALTER TABLE acct ADD CONSTRAINT acct_n_check CHECK (n >= 0)`)
		m.tr.waitRounds(e, 2)
		e.exec(`ALTER TABLE acct DROP CONSTRAINT acct_n_check`)
		m.settle()
		m.noErrors(mark)
	})

	step("replica_identity_full", func(t *testing.T) {
		mark := m.logMark()
		if mode == rules.ColumnLists {
			// A column list must cover every column of a REPLICA IDENTITY
			// FULL table: until pgveil publishes acct whole (as it does
			// when it starts), PostgreSQL refuses acct's UPDATE and
			// DELETE. pgveil notices within seconds, says so and repairs it.
			m.tr.pause()
			e.exec(`ALTER TABLE acct REPLICA IDENTITY FULL`)
			e.eventually("production's UPDATE and DELETE of acct working again", func() (bool, string) {
				_, err := e.src.Exec(ctx, `UPDATE acct SET n = n + 1 WHERE id % 7 = 0`)
				if err == nil {
					_, err = e.src.Exec(ctx, `DELETE FROM acct WHERE id IN (SELECT id FROM acct ORDER BY id DESC OFFSET 3 LIMIT 1)`)
				}
				return err == nil, fmt.Sprintf("%v", err)
			})
			m.tr.resume()
			m.waitLog("the replica identity change reported", mark, "public.acct", "REPLICA IDENTITY")
		} else {
			e.exec(`ALTER TABLE acct REPLICA IDENTITY FULL`)
		}
		m.settle()
		e.exec(`ALTER TABLE acct REPLICA IDENTITY DEFAULT`)
		m.settle()
		if mode != rules.ColumnLists {
			m.noErrors(mark)
		}
	})

	// The old rows of UPDATE and DELETE then carry the index's columns
	// only: pgveil copies the table again under that key.
	step("replica_identity_using_index", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`CREATE UNIQUE INDEX acct_code_key ON acct (code)`)
		e.exec(`ALTER TABLE acct REPLICA IDENTITY USING INDEX acct_code_key`)
		m.settle()
		e.exec(`ALTER TABLE acct REPLICA IDENTITY DEFAULT`)
		m.settle()
		m.noErrors(mark)
	})

	step("vacuum_full", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`VACUUM FULL acct`)
		m.settle()
		m.noErrors(mark)
	})

	step("cluster", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`CLUSTER acct USING acct_pkey`)
		m.settle()
		m.noErrors(mark)
	})

	step("truncate", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`TRUNCATE acct`)
		m.settle()
		m.noErrors(mark)
	})

	// The replica's enum lacks the label until pgveil restarts at the
	// checkpoint, which adds it.
	step("enum_add_value", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`ALTER TYPE mig_tier ADD VALUE 'vip'`)
		e.exec(`UPDATE acct SET tier = 'vip' WHERE id % 3 = 0`)
		e.exec(`INSERT INTO acct (email, tier, secret) VALUES ('vip@x.org', 'vip', $1)`, migCanary+"-vip")
		m.settle()
		m.noErrors(mark)
	})

	step("domain_change", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`ALTER DOMAIN mig_email ADD CONSTRAINT mig_email_at CHECK (VALUE LIKE '%@%')`)
		e.exec(`ALTER DOMAIN mig_email SET DEFAULT 'nobody@example.org'`)
		e.exec(`UPDATE acct SET contact = 'changed' || id || '@x.org' WHERE id % 4 = 0`)
		// A row that takes the domain's new default (the traffic's
		// prepared INSERT may keep the plan made before), seen in the
		// replica before the traffic deletes it.
		m.tr.pause()
		var id int64
		if err := e.src.QueryRow(ctx, `INSERT INTO acct (email, secret) VALUES ('dflt@x.org', $1) RETURNING id`, migCanary+"-domain").Scan(&id); err != nil {
			m.tr.resume()
			t.Fatal(err)
		}
		e.sync()
		var contact *string
		err := e.dst.QueryRow(ctx, `SELECT contact FROM public.acct WHERE id = $1`, id).Scan(&contact)
		m.tr.resume()
		if err != nil || contact == nil || *contact != "nobody@example.org" {
			t.Errorf("the row that took the domain's default: contact %v in the replica (%v)", contact, err)
		}
		m.settle()
		m.noErrors(mark)
	})

	step("drop_dropped_column", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`ALTER TABLE cols DROP COLUMN drop_c`)
		m.waitLog("the rule naming nothing reported", mark, "write rules for it", "columns gone from public.cols: drop_c")
		m.settle()
		m.rules.set("cols", "drop_c", "")
		m.reload()
		m.settle()
	})

	step("drop_kept_column", func(t *testing.T) {
		m.dropListedColumn(t, "keep_c", false)
	})

	step("drop_hashed_column", func(t *testing.T) {
		m.dropListedColumn(t, "hash_c", true)
	})

	step("rename_column", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`ALTER TABLE cols RENAME COLUMN ren_c TO ren_new`)
		e.exec(`UPDATE cols SET ren_new = 'renamed ' || id WHERE id % 3 = 0`)
		m.waitLog("the rename reported", mark, "write rules for it", "unruled columns in public.cols: ren_new", "columns gone from public.cols: ren_c")
		m.settle() // the renamed column is not replicated: settle checks
		// The operator renames the rule: the table is copied again.
		m.rules.renameColumn("cols", "ren_c", "ren_new")
		m.reload()
		e.waitReplica("the renamed column in the replica", `SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'cols' AND column_name = 'ren_new'`, "1")
		m.settle()
	})

	for _, tc := range []struct{ col, to, using, want string }{
		{"i", "bigint", "", "bigint"},
		{"vc", "text", "", "text"},
		{"txt_num", "integer", "txt_num::integer", "integer"},
		{"num", "numeric(12,4)", "", "numeric(12,4)"},
	} {
		step("change_type_"+tc.col, func(t *testing.T) {
			mark := m.logMark()
			alter := `ALTER TABLE cols ALTER COLUMN ` + tc.col + ` TYPE ` + tc.to
			if tc.using != "" {
				alter += ` USING ` + tc.using
			}
			if m.mode == rules.ColumnLists {
				m.refused(alter, "0A000", "cannot alter type of a column used by a publication WHERE clause")
				m.settle() // pgveil streams on
				// The documented way round: the table leaves the
				// publication for the migration's own transaction.
				list := m.publishedColumns("cols")
				e.exec(`BEGIN;
ALTER PUBLICATION p1 DROP TABLE cols;
` + alter + `;
ALTER PUBLICATION p1 ADD TABLE ONLY cols (` + strings.Join(list, ", ") + `);
COMMIT;`)
			} else {
				e.exec(alter)
			}
			m.waitLog("the type change reported", mark, "a column's type changed in production: restarting to copy the table again with the new type")
			e.waitReplica("the new type in the replica", `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.cols'::regclass AND attname = '`+tc.col+`'`, tc.want)
			m.settle()
		})
	}

	step("rename_table", func(t *testing.T) {
		mark := m.logMark()
		m.tr.pause()
		e.exec(`ALTER TABLE ren_tbl RENAME TO ren_tbl2`)
		m.tr.tables[slices.Index(m.tr.tables, "ren_tbl")] = "ren_tbl2"
		m.tr.resume()
		m.waitLog("the rename reported", mark, "write rules for it", "tables no rule names: public.ren_tbl2", "tables the rules name that the source lacks: public.ren_tbl")
		m.tr.waitRounds(e, 2)
		// The operator renames the rules.
		m.rules.renameTable("ren_tbl", "ren_tbl2")
		m.reload()
		e.waitReplica("the renamed table in the replica", `SELECT to_regclass('public.ren_tbl2') IS NOT NULL AND to_regclass('public.ren_tbl') IS NULL`, "true")
		m.settle()
	})

	step("drop_table", func(t *testing.T) {
		mark := m.logMark()
		m.tr.setTables(slices.DeleteFunc(slices.Clone(m.tr.tables), func(s string) bool { return s == "drop_tbl" })...)
		e.exec(`DROP TABLE drop_tbl`)
		m.waitLog("the dropped table reported", mark, "write rules for it", "tables the rules name that the source lacks: public.drop_tbl")
		m.tr.waitRounds(e, 2)
		m.rules.removeTable("drop_tbl")
		m.reload()
		e.waitReplica("the dropped table gone from the replica", `SELECT to_regclass('public.drop_tbl') IS NULL`, "true")
		m.settle()
	})

	step("create_table", func(t *testing.T) {
		mark := m.logMark()
		e.exec(`CREATE TABLE new_tbl (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0, secret text, v text, unruled_note text)`)
		e.exec(`INSERT INTO new_tbl (secret, v, unruled_note) SELECT $1, 'v' || g, $1 FROM generate_series(1, 30) g`, migCanary+"-new")
		m.waitLog("the new table reported", mark, "write rules for it", "tables no rule names: public.new_tbl")
		m.settle()
		m.rules.addTable("new_tbl", "id: keep", "n: keep", "secret: drop", "v: keep", "unruled_note: drop")
		m.reload()
		e.waitReplica("the new table in the replica", `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'new_tbl'`, "1")
		m.tr.setTables(append(slices.Clone(m.tr.tables), "new_tbl")...)
		m.settle()
	})

	// Partition maintenance on pt, published through its root:
	// PostgreSQL publishes no TRUNCATE of a partition, and nothing for
	// ATTACH, DETACH or DROP; pgveil notices the partitions change, says
	// so and copies pt again. Each step works on its own partition.
	partitionStep := func(name, migration, logged string, before ...string) {
		step(name, func(t *testing.T) {
			for _, q := range before {
				if strings.Contains(q, "$1") {
					e.exec(q, migCanary+"-partition")
				} else {
					e.exec(q)
				}
			}
			mark := m.logMark()
			e.exec(migration)
			m.waitLog("the partition change reported", mark, "partition maintenance changed a table's rows", "table=public.pt", logged)
			m.settleEventually()
		})
	}
	partitionStep("truncate_partition", `TRUNCATE pt_1`, "pt_1 truncated or rewritten")
	partitionStep("attach_partition", `ALTER TABLE pt ATTACH PARTITION pt_2 FOR VALUES IN (2)`, "pt_2 attached with rows",
		`CREATE TABLE pt_2 (LIKE pt INCLUDING DEFAULTS)`,
		`INSERT INTO pt_2 (bucket, secret, v, unruled_note) SELECT 2, $1, 'attached ' || g, $1 FROM generate_series(1, 20) g`)
	partitionStep("detach_partition", `ALTER TABLE pt DETACH PARTITION pt_3`, "detached or dropped")
	partitionStep("drop_partition", `DROP TABLE pt_4`, "detached or dropped")

	m.tr.stop()
	if err := m.tr.err(); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.verify()
	m.noLeak()
	if dump := m.dumpReplica(); strings.Contains(dump, migCanary) {
		t.Errorf("the canary is in a dump of the replica")
	}
}

// dropListedColumn drops a column the rules replicate (col).
// migration_safe: the DROP works; pgveil says the rule names nothing and
// the operator removes it. column_lists: PostgreSQL refuses the DROP;
// pgveil streams on; the column is dropped by a documented way round:
// its rule changed to drop and a reload first, or (cascade) DROP COLUMN
// ... CASCADE, which takes the table out of the publication until pgveil
// puts it back and copies it again.
func (m *migSuite) dropListedColumn(t *testing.T, col string, cascade bool) {
	e := m.e
	mark := m.logMark()
	drop := `ALTER TABLE cols DROP COLUMN ` + col
	if m.mode == rules.ColumnLists {
		m.refused(drop, "2BP01", "cannot drop column "+col+" of table cols because other objects depend on it")
		m.settle() // pgveil streams on
		if cascade {
			e.exec(drop + ` CASCADE`)
			m.waitLog("the table's return to the publication", mark, "level=ERROR", "tables left the publication behind pgveil's back", "public.cols")
		} else {
			m.rules.set("cols", col, "drop")
			m.reload()
			e.eventually("the column out of the publication", func() (bool, string) {
				list := m.publishedColumns("cols")
				return !slices.Contains(list, col), fmt.Sprintf("published columns %v", list)
			})
			e.exec(drop)
		}
	} else {
		e.exec(drop)
		m.waitLog("the dropped column reported", mark, "column of the rules no longer sent by the source", "column="+col)
	}
	m.waitLog("the rule naming nothing reported", mark, "write rules for it", "columns gone from public.cols: "+col)
	m.settle()
	// The operator removes the rule.
	m.rules.set("cols", col, "")
	m.reload()
	e.waitReplica("the column gone from the replica", `SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'cols' AND column_name = '`+col+`'`, "0")
	m.settle()
}

// reload puts the current rules in force, as an operator's SIGHUP does.
func (m *migSuite) reload() {
	m.e.t.Helper()
	m.e.rulesYML = m.rules.yaml() + migMarkerRules
	if err := m.e.p.Reload(context.Background(), m.e.config()); err != nil {
		m.e.t.Fatalf("reload: %v\nrules:\n%s", err, m.e.rulesYML)
	}
}

// settle checks a migration's outcome: production's traffic goes on
// (two rounds of it since), then, with the traffic held, the replica
// catches up, equals mask(production), and holds nothing it should not.
func (m *migSuite) settle() {
	m.e.t.Helper()
	m.tr.waitRounds(m.e, 2)
	m.tr.pause()
	defer m.tr.resume()
	m.e.sync()
	m.e.verify()
	m.noLeak()
}

// settleEventually is settle for a change pgveil may repair after a
// while: it compares until the replica equals mask(production).
func (m *migSuite) settleEventually() {
	e := m.e
	e.t.Helper()
	m.tr.waitRounds(e, 2)
	e.eventually("the replica equal to mask(production)", func() (bool, string) {
		m.tr.pause()
		defer m.tr.resume()
		e.sync()
		diffs := m.compare()
		return len(diffs) == 0, strings.Join(diffs, "; ")
	})
	m.tr.pause()
	defer m.tr.resume()
	m.noLeak()
}

// compare is verify's comparison, returning the differences.
func (m *migSuite) compare() []string {
	e := m.e
	e.t.Helper()
	ctx := context.Background()
	src, prep := e.prepare()
	diffs, err := Compare(ctx, src, e.dst, prep.Plan)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, d := range diffs {
		if !d.OK() {
			out = append(out, fmt.Sprintf("%s: source %d, replica %d, missing %d, extra %d, different %d", d.Table, d.Source, d.Target, d.Missing, d.Extra, d.Different))
		}
	}
	return out
}

// waitRounds waits until n more rounds of traffic have run; a failed
// round fails the test.
func (tr *migTraffic) waitRounds(e *e2e, n int64) {
	e.t.Helper()
	want := tr.rounds.Load() + n
	e.eventually(fmt.Sprintf("%d rounds of production traffic", n), func() (bool, string) {
		if err := tr.err(); err != nil {
			e.t.Fatalf("production's writes failed: %v", err)
		}
		got := tr.rounds.Load()
		return got >= want, fmt.Sprintf("round %d, want %d", got, want)
	})
}

// refused runs a migration PostgreSQL must refuse under column_lists,
// and checks the error.
func (m *migSuite) refused(sql, code, msg string) {
	m.e.t.Helper()
	_, err := m.e.src.Exec(context.Background(), sql)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code || pe.Message != msg {
		m.e.t.Fatalf("%s: got %v, want %q (SQLSTATE %s)", sql, err, msg, code)
	}
}

// publishedColumns is the publication's column list of a table.
func (m *migSuite) publishedColumns(table string) []string {
	m.e.t.Helper()
	var cols []string
	if err := m.e.src.QueryRow(context.Background(), `SELECT attnames::text[] FROM pg_publication_tables WHERE pubname = 'p1' AND schemaname = 'public' AND tablename = $1`, table).Scan(&cols); err != nil {
		m.e.t.Fatalf("the publication's columns of %s: %v", table, err)
	}
	return cols
}

func (m *migSuite) logMark() int { return len(m.e.logs.String()) }

// waitLog waits for a line of the log, written after mark, that holds
// every one of parts.
func (m *migSuite) waitLog(what string, mark int, parts ...string) {
	m.e.t.Helper()
	m.e.eventually(what+" in the log", func() (bool, string) {
		for _, line := range strings.Split(m.e.logs.String()[mark:], "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no line with %q", parts)
	})
}

// noErrors checks that pgveil logged no error since mark: a migration it
// follows by itself needs no one's attention.
func (m *migSuite) noErrors(mark int) {
	m.e.t.Helper()
	for _, line := range strings.Split(m.e.logs.String()[mark:], "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "replication interrupted") {
			m.e.t.Errorf("pgveil logged: %s", line)
		}
	}
}

// noLeak checks the replica: no table the rules do not name, no column
// they do not replicate, and the canary nowhere (nor in the log).
func (m *migSuite) noLeak() {
	e := m.e
	e.t.Helper()
	ctx := context.Background()
	rows, err := e.dst.Query(ctx, `SELECT c.table_name::text, array_agg(c.column_name::text ORDER BY c.ordinal_position)
FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' GROUP BY 1 ORDER BY 1`)
	if err != nil {
		e.t.Fatal(err)
	}
	var table string
	var cols []string
	_, err = pgx.ForEachRow(rows, []any{&table, &cols}, func() error {
		if table == "pgveil_marker" {
			return nil
		}
		if _, ok := m.rules.cols[table]; !ok {
			e.t.Errorf("the replica has table %s, which no rule names", table)
			return nil
		}
		want := m.rules.replicated(table)
		for _, c := range cols {
			if !slices.Contains(want, c) {
				e.t.Errorf("the replica's %s has column %s, which the rules do not replicate (they replicate %v)", table, c, want)
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	// Every row of every table of the replica, whatever its schema.
	rows, err = e.dst.Query(ctx, `SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		e.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	for _, tb := range tables {
		var n int64
		if err := e.dst.QueryRow(ctx, `SELECT count(*) FROM `+tb+` AS r WHERE r::text LIKE '%' || $1 || '%'`, migCanary).Scan(&n); err != nil {
			e.t.Fatalf("%s: %v", tb, err)
		}
		if n > 0 {
			e.t.Errorf("%d rows of the replica's %s hold the canary: an unruled or dropped column's value", n, tb)
		}
	}
	if strings.Contains(e.logs.String(), migCanary) {
		e.t.Errorf("pgveil's log holds the canary")
	}
}

// dumpReplica is pg_dump of the analytics database.
func (m *migSuite) dumpReplica() string {
	m.e.t.Helper()
	bin, err := pgtest.BinDir()
	if err != nil {
		m.e.t.Fatal(err)
	}
	dump, err := exec.Command(filepath.Join(bin, "pg_dump"), "--dbname", m.e.dstDSN).Output()
	if err != nil {
		m.e.t.Fatalf("pg_dump: %v", err)
	}
	return string(dump)
}

// The traffic's stop returns only once every statement the traffic sent
// has returned, committed: the final e.sync's marker must commit after all
// of them. A statement cut off by cancelling its context runs on in
// production (pgx gives up the connection, the server finishes the
// statement) and may commit after the marker: under load, the last verify
// of TestMigrations/column_lists once found a traffic INSERT in production
// that the replica did not have yet ("missing 1"). Here an INSERT that
// takes a second is under way when stop is called; cancelled, it goes on
// anyway, as one past its last check for a cancel (or reached by the
// cancel request pgx sends in the background too late) does.
func TestMigTrafficStopWaitsForItsStatements(t *testing.T) {
	dsn := clusters.Source.NewDB(t)
	ctx := context.Background()
	conn, err := testConnect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
CREATE TABLE acct (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0, secret text, unruled_note text, name text, email text);
CREATE FUNCTION mig_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(1);
  RETURN NEW;
EXCEPTION WHEN query_canceled THEN
  PERFORM pg_sleep(0.5);
  RETURN NEW;
END$$;
CREATE TRIGGER mig_slow BEFORE INSERT ON acct FOR EACH ROW EXECUTE FUNCTION mig_slow();`)
	if err != nil {
		t.Fatal(err)
	}
	// running counts the traffic's statements under way in production.
	running := func() int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE 'INSERT INTO acct %'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rows := func() int64 {
		t.Helper()
		var n int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM acct`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(patience); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, patience)
			}
		}
	}
	tr := startMigTraffic(t, dsn, "acct")
	waitFor("the traffic's INSERT under way", func() bool { return running() > 0 })
	tr.stop()
	if err := tr.err(); err != nil {
		t.Fatal(err)
	}
	after := rows()
	waitFor("production idle", func() bool { return running() == 0 })
	if later := rows(); later != after {
		t.Errorf("production's acct had %d rows when the traffic's stop returned, %d later: a statement of the traffic committed after stop", after, later)
	}
}
