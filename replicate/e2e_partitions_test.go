package replicate

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// Partition maintenance publishes no row change: with
// publish_via_partition_root, PostgreSQL publishes no TRUNCATE of a
// partition, and nothing for ATTACH, DETACH or DROP. pgveil notices the
// leaves change and copies the table again, so that the replica equals
// the masked source; a new empty partition (next month's) costs nothing.
func TestReplicatePartitionMaintenance(t *testing.T) {
	for _, mode := range []string{"migration_safe", "column_lists"} {
		t.Run(mode, func(t *testing.T) {
			e := newE2E(t, `
CREATE TABLE payments (id bigint, paid_on date NOT NULL, amount numeric(10,2), card text, PRIMARY KEY (id, paid_on)) PARTITION BY RANGE (paid_on);
CREATE TABLE payments_2024_01 PARTITION OF payments FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE payments_2024_02 PARTITION OF payments FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE payments_2024_03 PARTITION OF payments FOR VALUES FROM ('2024-03-01') TO ('2024-04-01')
  PARTITION BY RANGE (paid_on);
CREATE TABLE payments_2024_03a PARTITION OF payments_2024_03 FOR VALUES FROM ('2024-03-01') TO ('2024-03-16');
CREATE TABLE payments_2024_03b PARTITION OF payments_2024_03 FOR VALUES FROM ('2024-03-16') TO ('2024-04-01');
INSERT INTO payments SELECT g, date '2024-01-01' + (g % 90), g, 'card ' || g FROM generate_series(1, 900) g;`, `
  payments:
    columns: {id: hash, paid_on: keep, amount: keep, card: drop}
`)
			e.mode = mode
			e.start()
			e.sync()
			e.verify()
			if n := e.count("public.payments"); n != 900 {
				t.Fatalf("replica holds %d payments after the copy, want 900", n)
			}
			converged := func(what string) {
				t.Helper()
				e.sync()
				e.eventually(what, func() (bool, string) {
					d := e.differences()
					return d == "", d
				})
			}
			resyncs := func() int64 { return e.stats.Resyncs.Load() }

			// A new partition for next month, created ahead as pg_partman
			// does (empty when pgveil first sees it), is harmless: no copy.
			before := resyncs()
			e.exec(`CREATE TABLE payments_2024_04 PARTITION OF payments FOR VALUES FROM ('2024-04-01') TO ('2024-05-01')`)
			e.waitMonitorRounds(1) // each round checks the partitions first
			e.exec(`INSERT INTO payments VALUES (5000, '2024-04-02', 1, 'x')`)
			converged("the new partition's rows")
			e.waitMonitorRounds(2)
			if got := resyncs(); got != before {
				t.Errorf("a new empty partition made pgveil copy the table again (%d re-copies)", got-before)
			}

			// Retention: truncate the oldest month, detach and drop the
			// next; the replica follows without a person.
			e.exec(`TRUNCATE payments_2024_01`)
			converged("a truncated partition's rows gone")
			e.exec(`ALTER TABLE payments DETACH PARTITION payments_2024_02; DROP TABLE payments_2024_02`)
			converged("a detached and dropped partition's rows gone")
			// A sub-partition, two levels down.
			e.exec(`TRUNCATE payments_2024_03b`)
			converged("a truncated sub-partition's rows gone")
			// A table with rows attached as a partition.
			e.exec(`CREATE TABLE payments_2023_12 (LIKE payments);
INSERT INTO payments_2023_12 SELECT 10000 + g, date '2023-12-01' + g, g, 'old ' || g FROM generate_series(0, 30) g;
ALTER TABLE payments ATTACH PARTITION payments_2023_12 FOR VALUES FROM ('2023-12-01') TO ('2024-01-01')`)
			converged("an attached partition's rows in")
			if !strings.Contains(e.logs.String(), "partition maintenance changed a table's rows without publishing the change") {
				t.Error("the log does not say why the table was copied again")
			}
			if got := resyncs(); got < before+4 {
				t.Errorf("%d re-copies for 4 maintenance steps", got-before)
			}

			// While pgveil is stopped: found at the next start.
			e.stop()
			e.waitSlotInactive()
			e.exec(`TRUNCATE payments_2024_03a`)
			e.start()
			converged("a partition truncated while pgveil was stopped")
			e.verify()
			if n := e.count("public.payments"); n == 0 {
				t.Error("the replica holds no payment at all")
			}
		})
	}
}

// differences is verify that returns what differs ("" when nothing does)
// instead of failing the test.
func (e *e2e) differences() string {
	e.t.Helper()
	ctx := context.Background()
	src, err := testConnect(ctx, e.srcDSN)
	if err != nil {
		return err.Error()
	}
	defer src.Close(ctx)
	prep, err := PrepareRunning(ctx, src, e.config(), nil)
	if err != nil {
		return err.Error()
	}
	diffs, err := Compare(ctx, src, e.dst, prep.Plan)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, d := range diffs {
		if !d.OK() {
			out = append(out, fmt.Sprintf("%s: source %d, replica %d, missing %d, extra %d, different %d", d.Table, d.Source, d.Target, d.Missing, d.Extra, d.Different))
		}
	}
	return strings.Join(out, "; ")
}
