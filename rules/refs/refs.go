// Package refs is pgveil's reference model: which column refers to which
// key, across the whole source database. It is read from the catalog
// (foreign keys on tables, on partitions and on partitioned parents, each
// lifted to the partitioned root that pgveil replicates), completed by
// references inferred where no constraint exists (confirmed by sampled
// value overlap, never printing a value) and by references declared in the
// rules file. scan, validate, report and the replica's foreign keys all
// read it, so that every join on the replica is a join the model knows.
package refs

import (
	"pgveil/schema"
	"slices"
	"strings"
)

// Column is one column of one table.
type Column struct {
	Table schema.TableName
	Name  string
}

// String is schema.table.column, each part quoted where SQL needs it.
func (c Column) String() string {
	return c.Table.QualifiedName() + "." + schema.QuoteIdent(c.Name)
}

// Origin says where a reference comes from.
type Origin int

const (
	// Declared is a foreign key constraint on the table itself (or on its
	// partitioned parent).
	Declared Origin = iota
	// Partition is a foreign key declared on partitions only, lifted to
	// the partitioned root: pgveil replicates partitions as their root.
	Partition
	// Inferred has no constraint: the column's name and type match a key,
	// and sampled values of the column are found in the key.
	Inferred
	// Rules is declared in the rules file (`references:`).
	Rules
)

// String names the origin in messages and docs.
func (o Origin) String() string {
	switch o {
	case Declared:
		return "foreign key"
	case Partition:
		return "foreign key on partitions"
	case Inferred:
		return "inferred"
	case Rules:
		return "declared in the rules"
	}
	return "unknown"
}

// Ref is one column referring to one key column. A composite foreign key
// gives one Ref per column pair, all with the same Constraint.
type Ref struct {
	From, To Column
	Origin   Origin
	// Constraint is the foreign key's name ("" for inferred and rules
	// references); for Partition, the name on one of the partitions.
	Constraint string
	// Why says, for an inferred reference, what matched ("same name and
	// type as the key", "suffix _staff_id names staff.staff_id") and the
	// overlap measured; never a value.
	Why string
	// Overlap is, for an inferred reference, the share (0..1) of sampled
	// distinct values of From found in To.
	Overlap float64
}

// Model is every reference of a database, sorted by From then To.
type Model struct {
	Refs []Ref
	// Unconfirmed are the candidates inference tried and did not keep
	// (too few sampled values found, nothing to sample, sampling failed),
	// each with Why; for scan and the docs to show, never checked.
	Unconfirmed []Ref
}

// Add inserts r, keeping the order; a reference already present (same
// From and To) keeps the first origin added.
func (m *Model) Add(r Ref) {
	i, found := slices.BinarySearchFunc(m.Refs, r, compare)
	if found {
		return
	}
	m.Refs = slices.Insert(m.Refs, i, r)
}

// From returns the references whose referencing column is c.
func (m *Model) From(c Column) []Ref {
	if m == nil {
		return nil
	}
	var out []Ref
	for _, r := range m.Refs {
		if r.From == c {
			out = append(out, r)
		}
	}
	return out
}

// To returns the references to key column c.
func (m *Model) To(c Column) []Ref {
	var out []Ref
	for _, r := range m.Refs {
		if r.To == c {
			out = append(out, r)
		}
	}
	return out
}

func compare(a, b Ref) int {
	if c := compareColumn(a.From, b.From); c != 0 {
		return c
	}
	return compareColumn(a.To, b.To)
}

func compareColumn(a, b Column) int {
	if c := strings.Compare(a.Table.Schema, b.Table.Schema); c != 0 {
		return c
	}
	if c := strings.Compare(a.Table.Name, b.Table.Name); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}
