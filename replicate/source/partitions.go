package source

import (
	"context"
	"fmt"
	"pgveil/schema"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Partition maintenance changes a partitioned table's rows without a row
// change PostgreSQL would publish: with publish_via_partition_root (which
// pgveil's publication uses, so that partitions replicate as their table),
// a TRUNCATE of one partition is not published, and ATTACH, DETACH and DROP
// of a partition publish nothing at all. pgveil therefore watches the
// leaves of each replicated partitioned table: their set, and each one's
// relfilenode, which every TRUNCATE replaces (as do VACUUM FULL, CLUSTER
// and table rewrites, which pgveil cannot tell from a TRUNCATE).

// Leaves is the state of a partitioned table's leaf partitions, as pgveil
// records it: each leaf's OID and relfilenode.
type Leaves struct {
	files map[uint32]uint32 // leaf OID -> relfilenode
	names map[uint32]string // leaf OID -> qualified name, for messages
	empty map[uint32]bool   // leaf OID -> its heap has no page at all
	order []uint32          // OIDs, sorted
}

// String is the recorded form: "oid:relfilenode" pairs by OID, comma
// separated ("" for a table without leaves).
func (l Leaves) String() string {
	parts := make([]string, len(l.order))
	for i, oid := range l.order {
		parts[i] = fmt.Sprintf("%d:%d", oid, l.files[oid])
	}
	return strings.Join(parts, ",")
}

// ParseLeaves reads the recorded form of String.
func ParseLeaves(s string) (Leaves, error) {
	l := Leaves{files: map[uint32]uint32{}}
	if s == "" {
		return l, nil
	}
	for _, part := range strings.Split(s, ",") {
		o, f, ok := strings.Cut(part, ":")
		oid, err1 := strconv.ParseUint(o, 10, 32)
		file, err2 := strconv.ParseUint(f, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return Leaves{}, fmt.Errorf("malformed partition record %q", part)
		}
		l.add(uint32(oid), uint32(file), "", false)
	}
	return l, nil
}

func (l *Leaves) add(oid, file uint32, name string, empty bool) {
	if l.files == nil {
		l.files = map[uint32]uint32{}
	}
	if _, dup := l.files[oid]; !dup {
		i, _ := slices.BinarySearch(l.order, oid)
		l.order = slices.Insert(l.order, i, oid)
	}
	l.files[oid] = file
	if name != "" {
		if l.names == nil {
			l.names = map[uint32]string{}
		}
		l.names[oid] = name
	}
	if empty {
		if l.empty == nil {
			l.empty = map[uint32]bool{}
		}
		l.empty[oid] = true
	}
}

// Equal reports whether l and m record the same leaves and relfilenodes.
func (l Leaves) Equal(m Leaves) bool { return l.String() == m.String() }

// LeafChange is what Compare finds between the recorded leaves and the
// current ones.
type LeafChange struct {
	// Diverged: rows changed without being published (a leaf truncated,
	// detached, dropped or rewritten, or attached with rows): the table
	// must be copied again. Why says which leaves, by name.
	Diverged bool
	Why      string
	// Next is what to record now: the current leaves when nothing
	// diverged (new empty leaves are harmless: rows inserted into them
	// later are published).
	Next Leaves
}

// Compare compares recorded leaves with current ones (as ReadLeaves read
// them, names and emptiness included).
func (l Leaves) Compare(current Leaves) LeafChange {
	var reasons []string
	name := func(oid uint32) string {
		if n := current.names[oid]; n != "" {
			return n
		}
		return "partition with OID " + strconv.FormatUint(uint64(oid), 10)
	}
	for _, oid := range l.order {
		file, ok := current.files[oid]
		switch {
		case !ok:
			reasons = append(reasons, name(oid)+" detached or dropped")
		case file != l.files[oid]:
			reasons = append(reasons, name(oid)+" truncated or rewritten")
		}
	}
	for _, oid := range current.order {
		if _, ok := l.files[oid]; !ok && !current.empty[oid] {
			reasons = append(reasons, name(oid)+" attached with rows")
		}
	}
	if len(reasons) > 0 {
		return LeafChange{Diverged: true, Why: strings.Join(reasons, "; "), Next: current}
	}
	return LeafChange{Next: current}
}

// ReadLeaves reads the leaf partitions of each partitioned table among
// tables (the others are left out of the result), with their relfilenodes,
// names and whether their heap is empty (pg_relation_size, which needs no
// privilege on the partition). Sub-partitions are followed down to the
// leaves.
func ReadLeaves(ctx context.Context, conn *pgx.Conn, tables []schema.TableName) (map[schema.TableName]Leaves, error) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.QualifiedName()
	}
	rows, err := conn.Query(ctx, `
WITH RECURSIVE roots AS (
  SELECT n.ord, c.oid
  FROM unnest($1::text[]) WITH ORDINALITY AS n(name, ord)
  JOIN pg_catalog.pg_class c ON c.oid = to_regclass(n.name) AND c.relkind = 'p'
), tree(ord, relid) AS (
  SELECT ord, oid FROM roots
  UNION ALL
  SELECT t.ord, i.inhrelid FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.relid
)
SELECT t.ord::int, c.oid, c.relfilenode, format('%I.%I', ns.nspname, c.relname),
       c.relkind = 'r' AND pg_catalog.pg_relation_size(c.oid) = 0
FROM tree t
JOIN pg_catalog.pg_class c ON c.oid = t.relid
JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
WHERE c.relkind <> 'p'
UNION ALL
SELECT ord::int, 0, 0, '', false FROM roots`, names)
	if err != nil {
		return nil, schema.WrapSQL(err, "reading the partitions")
	}
	out := map[schema.TableName]Leaves{}
	for rows.Next() {
		var (
			ord       int
			oid, file uint32
			name      string
			emptyLeaf bool
		)
		if err := rows.Scan(&ord, &oid, &file, &name, &emptyLeaf); err != nil {
			return nil, schema.WrapSQL(err, "reading the partitions")
		}
		t := tables[ord-1]
		l := out[t]
		if oid != 0 { // 0: the root's own row, so that a table without leaves is there too
			l.add(oid, file, name, emptyLeaf)
		}
		out[t] = l
	}
	if err := rows.Err(); err != nil {
		return nil, schema.WrapSQL(err, "reading the partitions")
	}
	return out, nil
}
