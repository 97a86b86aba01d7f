package refs

import (
	"context"
	"fmt"
	"pgveil/schema"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options tune Read.
type Options struct {
	// Schemas limits the model to references between these schemas;
	// empty: every schema.
	Schemas []string
	// Tables, when not empty, limits inference to the columns and keys
	// of these tables (validate passes the rules' tables: a pair outside
	// them is never checked, and pgveil's role may not read them).
	// Foreign keys are read whatever it holds.
	Tables []schema.TableName

	// Infer adds references where no constraint exists: a column whose
	// name and type point at a single-column primary or unique key
	// (payment.customer_id → customer.customer_id, manager_staff_id →
	// staff.staff_id, owner_user_id → users.id), kept when sampled values
	// of the column are found in the key. Off, Read reads constraints
	// only and runs no query on the tables.
	Infer bool
	// SampleSize is the most distinct values sampled per candidate
	// (DefaultSampleSize when 0).
	SampleSize int
	// Timeout bounds each sampling statement (DefaultTimeout when 0); a
	// candidate whose sample times out is not inferred.
	Timeout time.Duration
	// MinOverlap is the share of sampled values the key must hold for a
	// candidate to be kept (DefaultMinOverlap when 0).
	MinOverlap float64
}

// Read builds the model from the catalog's foreign keys. A foreign key on
// a partitioned table is read once, on the table (PostgreSQL clones it to
// every partition with conparentid set); one declared only on partitions,
// or pointing at a partition, is lifted to the partitioned root, which is
// the table pgveil replicates (publish_via_partition_root), and recorded
// once with Origin Partition.
//
// With opt.Infer, references are then inferred where no foreign key covers
// a column (see Options.Infer): each candidate is confirmed by sampling,
// in a read-only transaction with a statement timeout, values that never
// leave the server (only two counts are read back). Candidates that are
// not confirmed are listed in Model.Unconfirmed. Read then runs its own
// transactions, so conn must not be inside one.
func Read(ctx context.Context, conn *pgx.Conn, opt Options) (*Model, error) {
	rows, err := conn.Query(ctx, `
WITH fk AS (
  SELECT k.oid, k.conname, k.conparentid,
         CASE WHEN c.relispartition THEN pg_catalog.pg_partition_root(c.oid) ELSE c.oid END AS rel,
         CASE WHEN fc.relispartition THEN pg_catalog.pg_partition_root(fc.oid) ELSE fc.oid END AS frel,
         c.relispartition OR fc.relispartition AS lifted,
         u.col, u.fcol, k.conrelid, k.confrelid
  FROM pg_catalog.pg_constraint k
  JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
  JOIN pg_catalog.pg_class fc ON fc.oid = k.confrelid
  CROSS JOIN LATERAL unnest(k.conkey, k.confkey) AS u(col, fcol)
  WHERE k.contype = 'f' AND k.conparentid = 0
)
SELECT n.nspname::text, r.relname::text, ra.attname::text,
       fn.nspname::text, fr.relname::text, fra.attname::text,
       fk.conname::text, fk.lifted
FROM fk
JOIN pg_catalog.pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = fk.col
JOIN pg_catalog.pg_attribute fa ON fa.attrelid = fk.confrelid AND fa.attnum = fk.fcol
JOIN pg_catalog.pg_class r ON r.oid = fk.rel
JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
JOIN pg_catalog.pg_attribute ra ON ra.attrelid = fk.rel AND ra.attname = a.attname AND NOT ra.attisdropped
JOIN pg_catalog.pg_class fr ON fr.oid = fk.frel
JOIN pg_catalog.pg_namespace fn ON fn.oid = fr.relnamespace
JOIN pg_catalog.pg_attribute fra ON fra.attrelid = fk.frel AND fra.attname = fa.attname AND NOT fra.attisdropped
ORDER BY fk.lifted, fk.oid, fk.col`)
	if err != nil {
		return nil, fmt.Errorf("reading foreign keys: %w", err)
	}
	m := &Model{}
	for rows.Next() {
		var r Ref
		var lifted bool
		if err := rows.Scan(&r.From.Table.Schema, &r.From.Table.Name, &r.From.Name,
			&r.To.Table.Schema, &r.To.Table.Name, &r.To.Name, &r.Constraint, &lifted); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading foreign keys: %w", err)
		}
		if lifted {
			r.Origin = Partition
		}
		if len(opt.Schemas) > 0 && (!slices.Contains(opt.Schemas, r.From.Table.Schema) || !slices.Contains(opt.Schemas, r.To.Table.Schema)) {
			continue
		}
		m.Add(r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading foreign keys: %w", err)
	}
	if opt.Infer {
		if err := infer(ctx, conn, opt.withDefaults(), m); err != nil {
			return nil, fmt.Errorf("inferring references: %w", err)
		}
	}
	return m, nil
}

// Table is a helper for tests and callers building models by hand.
func Table(schemaName, name string) schema.TableName {
	return schema.TableName{Schema: schemaName, Name: name}
}
