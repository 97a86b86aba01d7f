package replicate

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"pgveil/replicate/source"
	"pgveil/replicate/target"
	"pgveil/schema"
)

// partitionWatch follows partition maintenance on the replicated
// partitioned tables (see source.Leaves): a leaf truncated, detached,
// dropped or rewritten, or attached with rows, changes the table's rows
// without a published change, so the table must be copied again. It holds,
// by table, the leaves the replica is consistent with, recorded in
// pgveil.tables.partitions so that what happens while pgveil is stopped
// is found at the next start too.
type partitionWatch struct {
	leaves    map[schema.TableName]source.Leaves
	targetDSN string
}

// partitionedTables are the plan's partitioned tables.
func partitionedTables(prep *Prepared) []schema.TableName {
	var out []schema.TableName
	for _, tp := range prep.Plan.Tables() {
		n := tableName(tp)
		if _, info := prep.Catalog.Table(n); info != nil && info.Partitioned {
			out = append(out, n)
		}
	}
	return out
}

// newPartitionWatch reads the partitioned tables' leaves as they are now,
// before any snapshot of this attempt, and decides what each table's
// replica is consistent with: what pgveil.tables records, or, for tables
// about to be copied (all of them on the first start, recopy on a
// resume), the leaves as they are now, which the copies record once
// done. A table with nothing recorded (copied by an earlier version) is
// taken as consistent with its leaves now, and recorded so. It returns the
// watch and the current leaves of the tables to be copied, in recorded
// form.
func newPartitionWatch(ctx context.Context, src, tgt *pgx.Conn, prep *Prepared, targetDSN string, copyAll bool, recopy map[schema.TableName]bool) (*partitionWatch, map[schema.TableName]string, error) {
	w := &partitionWatch{leaves: map[schema.TableName]source.Leaves{}, targetDSN: targetDSN}
	tables := partitionedTables(prep)
	if len(tables) == 0 {
		return w, nil, nil
	}
	now, err := source.ReadLeaves(ctx, src, tables)
	if err != nil {
		return nil, nil, err
	}
	var stored map[schema.TableName]string
	if !copyAll {
		if stored, err = target.ReadPartitions(ctx, tgt); err != nil {
			return nil, nil, err
		}
	}
	toCopy := map[schema.TableName]string{}
	record := map[schema.TableName]string{}
	for n, cur := range now {
		if copyAll || recopy[n] {
			w.leaves[n], toCopy[n] = cur, cur.String()
			continue
		}
		if s, ok := stored[n]; ok {
			if l, err := source.ParseLeaves(s); err == nil {
				w.leaves[n] = l
				continue
			}
		}
		w.leaves[n], record[n] = cur, cur.String()
	}
	if err := target.RecordPartitions(ctx, tgt, record); err != nil {
		return nil, nil, err
	}
	return w, toCopy, nil
}

// check compares the leaves with the recorded ones. It returns the tables
// whose rows changed without being published; harmless changes (new empty
// partitions) are recorded as they are now.
func (w *partitionWatch) check(ctx context.Context, src *pgx.Conn, log *slog.Logger) ([]schema.TableName, error) {
	if w == nil || len(w.leaves) == 0 {
		return nil, nil
	}
	tables := make([]schema.TableName, 0, len(w.leaves))
	for n := range w.leaves {
		tables = append(tables, n)
	}
	now, err := source.ReadLeaves(ctx, src, tables)
	if err != nil {
		return nil, err
	}
	var diverged []schema.TableName
	record := map[schema.TableName]string{}
	for _, n := range tables {
		cur, ok := now[n]
		if !ok {
			continue // no longer partitioned, or gone: drift reports it
		}
		ch := w.leaves[n].Compare(cur)
		switch {
		case ch.Diverged:
			log.Warn("partition maintenance changed a table's rows without publishing the change (PostgreSQL publishes no TRUNCATE of a partition under publish_via_partition_root, and nothing for ATTACH, DETACH or DROP): copying the table again",
				"table", n.QualifiedName(), "partitions", ch.Why)
			diverged = append(diverged, n)
		case !w.leaves[n].Equal(ch.Next):
			w.leaves[n], record[n] = ch.Next, ch.Next.String()
		}
	}
	if len(record) > 0 {
		// Not recorded, the change is only found harmless again by this
		// process: a restart would copy the table again, which is correct.
		if err := w.record(ctx, record); err != nil && ctx.Err() == nil {
			log.Warn("recording new partitions", "error", err.Error())
		}
	}
	return diverged, nil
}

func (w *partitionWatch) record(ctx context.Context, leaves map[schema.TableName]string) error {
	tgt, err := connectTarget(ctx, w.targetDSN)
	if err != nil {
		return err
	}
	defer tgt.Close(context.Background())
	return target.RecordPartitions(ctx, tgt, leaves)
}
