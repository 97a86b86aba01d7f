package schema

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Catalog is what pgveil knows of the source tables it replicates.
type Catalog struct {
	// Tables are the tables as transformers see them (the rules compile
	// against this).
	Tables Tables
	// Info holds what replication needs to know beyond the columns.
	Info map[TableName]*TableInfo
	// Enums maps each enum type used by a column (by its schema-qualified,
	// quoted-where-needed name, as in transform.Type.Name) to its labels in
	// sort order.
	Enums map[string][]string
}

// TableInfo describes a source table beyond its columns.
type TableInfo struct {
	OID uint32
	// ReplicaIdentity is pg_class.relreplident: 'd' default (the primary
	// key), 'f' full, 'i' index, 'n' nothing.
	ReplicaIdentity byte
	// IdentityColumns are the columns that identify a row in UPDATE and
	// DELETE messages: the primary key's (in key order) for DEFAULT, the
	// identity index's for USING INDEX, every published column for FULL,
	// none for NOTHING or DEFAULT without a primary key.
	IdentityColumns []string
	HasPrimaryKey   bool
	// Partitioned: a partitioned table (relkind 'p').
	Partitioned bool
	// EstimatedRows is pg_class.reltuples, -1 when unknown.
	EstimatedRows int64
	// Pages is pg_class.relpages.
	Pages int64
	// ColumnTypes holds each column's exact SQL type: format_type() with
	// every type outside pg_catalog schema-qualified, domains kept (where
	// the Type of Tables holds the domain's base type). Filter casts to it.
	ColumnTypes map[string]string
	// ColumnCollations holds, for each column declared with a collation
	// other than its type's (status text COLLATE "ci"), that collation,
	// qualified and quoted. Filter applies it: under the type's default
	// a case-insensitive `status <> 'deleted'` would pass 'DELETED'.
	ColumnCollations map[string]string
}

// Table returns the catalog's table and its info, or nils.
func (c *Catalog) Table(n TableName) (*Table, *TableInfo) {
	return c.Tables[n], c.Info[n]
}

// ListTables lists every ordinary and partitioned table outside
// pg_catalog, information_schema, pg_toast and temporary schemas, sorted by
// schema and name. Partitions are left out: their rows replicate through
// their partitioned table.
func ListTables(ctx context.Context, conn *pgx.Conn) ([]TableName, error) {
	rows, err := conn.Query(ctx, `
SELECT n.nspname::text, c.relname::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast'
  AND n.nspname !~ '^pg_temp_'
ORDER BY 1, 2`)
	if err != nil {
		return nil, WrapSQL(err, "listing source tables")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableName, error) {
		var n TableName
		err := r.Scan(&n.Schema, &n.Name)
		return n, err
	})
	if err != nil {
		return nil, WrapSQL(err, "listing source tables")
	}
	return out, nil
}

// ReadCatalog reads the source catalog of the given tables, in one
// read-only snapshot. For each table it returns the columns in attribute
// order (not dropped, not system, not generated), each with its type,
// NOT NULL, key and uniqueness. Domains are replaced by their base type
// (with the base type's modifier), so transformers see text rather than
// "email_domain"; enums (and other types defined outside pg_catalog) have
// KindOther and their schema-qualified, quoted-where-needed name
// ("public.mood"); arrays keep their element's treatment ("public.mood[]").
// An array column declared with more dimensions (text[][]) keeps them in
// ArrayDims. Tables that do not exist are absent from the result.
func ReadCatalog(ctx context.Context, conn *pgx.Conn, tables []TableName) (*Catalog, error) {
	cat := &Catalog{
		Tables: Tables{},
		Info:   map[TableName]*TableInfo{},
		Enums:  map[string][]string{},
	}
	if len(tables) == 0 {
		return cat, nil
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("reading the source catalog: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// format_type() qualifies every type not visible on the search path:
	// with pg_catalog alone, that is every user-defined type.
	for _, s := range []string{
		"SET LOCAL search_path = pg_catalog",
		"SET LOCAL statement_timeout = '" + catalogStatementTimeout + "'",
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return nil, WrapSQL(err, "reading the source catalog")
		}
	}
	version, err := ServerVersion(ctx, tx)
	if err != nil {
		return nil, err
	}
	r := &catalogReader{ctx: ctx, tx: tx, version: version, cat: cat,
		types: map[uint32]*pgType{}, formatted: map[[2]int64]string{}, enumTypes: map[uint32]string{}}
	if err := r.read(tables); err != nil {
		return nil, err
	}
	return cat, nil
}

// catalogStatementTimeout bounds each catalog query: reading the catalog
// takes no lock production's migrations wait on, but a stuck query must
// not hold a snapshot open on production.
const catalogStatementTimeout = "30s"

// catalogReader holds the state of one ReadCatalog call.
type catalogReader struct {
	ctx     context.Context
	tx      pgx.Tx
	version int
	cat     *Catalog

	rels      []*relation
	types     map[uint32]*pgType
	formatted map[[2]int64]string // format_type(oid, typmod) of pg_catalog types
	enumTypes map[uint32]string   // enum oid -> qualified name
}

// relation is one table being read.
type relation struct {
	name     TableName
	info     *TableInfo
	relkind  byte
	attrs    []attribute
	pk       []int16 // primary key attnums, in key order
	identIdx []int16 // replica identity index attnums, in key order
	unique   map[int16]bool
}

// attribute is one pg_attribute row.
type attribute struct {
	num       int16
	name      string
	typeOID   uint32
	typmod    int32
	ndims     int32
	notNull   bool
	generated bool
	sqlType   string
	collation string // qualified, when not the type's own (TableInfo.ColumnCollations)
}

// pgType is one pg_type row.
type pgType struct {
	typtype  string
	base     uint32
	basemod  int32
	elem     uint32
	isArray  bool // elem's array type is this one (not int2vector and the like)
	nspname  string
	typname  string
	qualName string
}

func (r *catalogReader) read(tables []TableName) error {
	if err := r.readRelations(tables); err != nil {
		return err
	}
	if len(r.rels) == 0 {
		return nil
	}
	if err := r.readAttributes(); err != nil {
		return err
	}
	if err := r.readIndexes(); err != nil {
		return err
	}
	for _, rel := range r.rels {
		if err := r.build(rel); err != nil {
			return err
		}
	}
	return r.readEnums()
}

func (r *catalogReader) readRelations(tables []TableName) error {
	schemas := make([]string, len(tables))
	names := make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Name
	}
	rows, err := r.tx.Query(r.ctx, `
SELECT DISTINCT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.relreplident::text,
       c.reltuples::float8, c.relpages::int8
FROM unnest($1::text[], $2::text[]) AS w(nsp, rel)
JOIN pg_namespace n ON n.nspname = w.nsp
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel
WHERE c.relkind IN ('r', 'p')`, schemas, names)
	if err != nil {
		return WrapSQL(err, "reading the source catalog: tables")
	}
	defer rows.Close()
	for rows.Next() {
		var (
			rel             relation
			relkind, ident  string
			tuples          float64
			info            TableInfo
			schema, relname string
		)
		if err := rows.Scan(&info.OID, &schema, &relname, &relkind, &ident, &tuples, &info.Pages); err != nil {
			return WrapSQL(err, "reading the source catalog: tables")
		}
		rel.name = TableName{Schema: schema, Name: relname}
		rel.relkind = relkind[0]
		info.ReplicaIdentity = ident[0]
		info.Partitioned = rel.relkind == 'p'
		info.EstimatedRows = -1
		if tuples >= 0 {
			info.EstimatedRows = int64(tuples)
		}
		info.ColumnTypes = map[string]string{}
		info.ColumnCollations = map[string]string{}
		rel.info = &info
		rel.unique = map[int16]bool{}
		r.rels = append(r.rels, &rel)
	}
	if err := rows.Err(); err != nil {
		return WrapSQL(err, "reading the source catalog: tables")
	}
	return nil
}

func (r *catalogReader) oids() []uint32 {
	oids := make([]uint32, len(r.rels))
	for i, rel := range r.rels {
		oids[i] = rel.info.OID
	}
	return oids
}

func (r *catalogReader) byOID(oid uint32) *relation {
	for _, rel := range r.rels {
		if rel.info.OID == oid {
			return rel
		}
	}
	return nil
}

func (r *catalogReader) readAttributes() error {
	generated := "''"
	if r.version >= 120000 {
		generated = "a.attgenerated::text"
	}
	rows, err := r.tx.Query(r.ctx, `
SELECT a.attrelid, a.attnum, a.attname::text, a.atttypid, a.atttypmod, a.attndims, a.attnotnull,
       `+generated+` <> '', format_type(a.atttypid, a.atttypmod),
       coalesce((SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                 FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace JOIN pg_type ty ON ty.oid = a.atttypid
                 WHERE co.oid = a.attcollation AND a.attcollation <> ty.typcollation), '')
FROM pg_attribute a
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`, r.oids())
	if err != nil {
		return WrapSQL(err, "reading the source catalog: columns")
	}
	defer rows.Close()
	var typeOIDs []uint32
	for rows.Next() {
		var (
			relid uint32
			a     attribute
		)
		if err := rows.Scan(&relid, &a.num, &a.name, &a.typeOID, &a.typmod, &a.ndims, &a.notNull, &a.generated, &a.sqlType, &a.collation); err != nil {
			return WrapSQL(err, "reading the source catalog: columns")
		}
		if rel := r.byOID(relid); rel != nil {
			rel.attrs = append(rel.attrs, a)
		}
		typeOIDs = append(typeOIDs, a.typeOID)
	}
	if err := rows.Err(); err != nil {
		return WrapSQL(err, "reading the source catalog: columns")
	}
	return r.loadTypes(typeOIDs)
}

// loadTypes reads the pg_type rows of oids not read yet.
func (r *catalogReader) loadTypes(oids []uint32) error {
	var missing []uint32
	for _, o := range oids {
		if _, ok := r.types[o]; !ok && !slices.Contains(missing, o) {
			missing = append(missing, o)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	rows, err := r.tx.Query(r.ctx, `
SELECT t.oid, t.typtype::text, t.typbasetype, t.typtypmod, t.typelem,
       COALESCE((SELECT e.typarray = t.oid FROM pg_type e WHERE e.oid = t.typelem), false),
       n.nspname::text, t.typname::text
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.oid = ANY($1::oid[])`, missing)
	if err != nil {
		return WrapSQL(err, "reading the source catalog: types")
	}
	defer rows.Close()
	for rows.Next() {
		var (
			oid uint32
			t   pgType
		)
		if err := rows.Scan(&oid, &t.typtype, &t.base, &t.basemod, &t.elem, &t.isArray, &t.nspname, &t.typname); err != nil {
			return WrapSQL(err, "reading the source catalog: types")
		}
		t.qualName = QuoteIdent(t.nspname) + "." + QuoteIdent(t.typname)
		r.types[oid] = &t
	}
	if err := rows.Err(); err != nil {
		return WrapSQL(err, "reading the source catalog: types")
	}
	for _, o := range missing {
		if _, ok := r.types[o]; !ok {
			return fmt.Errorf("reading the source catalog: type %d not found", o)
		}
	}
	return nil
}

// resolve returns the transform.Type of a column of type oid with typmod
// and attndims ndims: domains become their base type, composite types
// text, enums and other types defined outside pg_catalog keep their
// qualified name.
func (r *catalogReader) resolve(oid uint32, typmod, ndims int32) (Type, error) {
	dims := 0
	for range 100 { // domains over domains over arrays...: bounded
		if err := r.loadTypes([]uint32{oid}); err != nil {
			return Type{}, err
		}
		t := r.types[oid]
		switch {
		case t.typtype == "d":
			oid, typmod = t.base, t.basemod
			continue
		case t.isArray:
			dims++ // the modifier of an array applies to its elements
			oid = t.elem
			continue
		}
		var out Type
		switch {
		case t.typtype == "e":
			out = Type{Name: t.qualName, Kind: KindOther}
			r.enumTypes[oid] = t.qualName
		case t.nspname == "pg_catalog":
			key := [2]int64{int64(oid), int64(typmod)}
			s, ok := r.formatted[key]
			if !ok {
				if err := r.tx.QueryRow(r.ctx, "SELECT format_type($1::oid, $2::int)", oid, typmod).Scan(&s); err != nil {
					return Type{}, WrapSQL(err, "reading the source catalog: formatting type %d", oid)
				}
				r.formatted[key] = s
			}
			var err error
			if out, err = ParseType(s); err != nil {
				return Type{}, fmt.Errorf("type %s: %w", s, err)
			}
		case t.typtype == "b" && t.typname == "citext":
			out = MustType("citext")
		case t.typtype == "c":
			// A composite type would have to exist in the replica, with
			// every type it is made of: its values are replicated as
			// their text form, "(EUR,1999)", into text.
			out = MustType("text")
		default:
			out = Type{Name: t.qualName, Kind: KindOther}
		}
		if dims > 0 && int(ndims) > dims {
			dims = int(ndims)
		}
		out.ArrayDims = dims
		return out, nil
	}
	return Type{}, fmt.Errorf("type %d: domain or array nesting too deep", oid)
}

func (r *catalogReader) readIndexes() error {
	nkey := "i.indnatts"
	if r.version >= 110000 {
		nkey = "i.indnkeyatts"
	}
	rows, err := r.tx.Query(r.ctx, `
SELECT i.indrelid, i.indisprimary, i.indisreplident, i.indisunique AND i.indisvalid AND i.indpred IS NULL,
       `+nkey+`::int, i.indkey::text
FROM pg_index i
WHERE i.indrelid = ANY($1::oid[])`, r.oids())
	if err != nil {
		return WrapSQL(err, "reading the source catalog: indexes")
	}
	defer rows.Close()
	for rows.Next() {
		var (
			relid                  uint32
			primary, ident, unique bool
			nkeys                  int
			indkey                 string
		)
		if err := rows.Scan(&relid, &primary, &ident, &unique, &nkeys, &indkey); err != nil {
			return WrapSQL(err, "reading the source catalog: indexes")
		}
		rel := r.byOID(relid)
		if rel == nil {
			continue
		}
		var keys []int16
		for i, f := range strings.Fields(indkey) {
			if i >= nkeys {
				break // INCLUDE columns are not keys
			}
			n, err := strconv.ParseInt(f, 10, 16)
			if err != nil {
				return fmt.Errorf("reading the source catalog: %s: index key %q", rel.name.QualifiedName(), indkey)
			}
			keys = append(keys, int16(n))
		}
		switch {
		case primary:
			rel.pk = keys
		case unique && len(keys) == 1 && keys[0] > 0:
			rel.unique[keys[0]] = true
		}
		if ident {
			rel.identIdx = keys
		}
	}
	if err := rows.Err(); err != nil {
		return WrapSQL(err, "reading the source catalog: indexes")
	}
	return nil
}

// build fills in the table and its info from what was read.
func (r *catalogReader) build(rel *relation) error {
	info := rel.info
	t := &Table{Schema: rel.name.Schema, Name: rel.name.Name, Partitioned: rel.relkind == 'p'}
	names := map[int16]string{}
	for _, a := range rel.attrs {
		names[a.num] = a.name
		info.ColumnTypes[a.name] = a.sqlType
		if a.collation != "" {
			info.ColumnCollations[a.name] = a.collation
		}
	}
	keyNames := func(nums []int16) []string {
		var out []string
		for _, n := range nums {
			if name, ok := names[n]; ok {
				out = append(out, name)
			}
		}
		return out
	}
	info.HasPrimaryKey = len(rel.pk) > 0
	var identity []int16
	switch info.ReplicaIdentity {
	case 'd':
		identity = rel.pk
	case 'i':
		identity = rel.identIdx
	}
	// The replica's key is what identifies a row in the stream's UPDATE
	// and DELETE messages: the identity index's columns under REPLICA
	// IDENTITY USING INDEX (an old row carries those alone, not the
	// primary key), else the primary key (under FULL an old row carries
	// every column, the key's too).
	key := rel.pk
	if info.ReplicaIdentity == 'i' {
		key = rel.identIdx
	}
	for _, a := range rel.attrs {
		if a.generated {
			t.Generated = append(t.Generated, a.name)
			continue
		}
		typ, err := r.resolve(a.typeOID, a.typmod, a.ndims)
		if err != nil {
			return fmt.Errorf("reading the source catalog: %s.%s: %w", rel.name.QualifiedName(), QuoteIdent(a.name), err)
		}
		t.Columns = append(t.Columns, Column{
			Name:       a.name,
			Type:       typ,
			NotNull:    a.notNull,
			PrimaryKey: slices.Contains(key, a.num),
			// A single-column primary key that is not the replica's key
			// (USING INDEX on another index) is still unique.
			Unique: rel.unique[a.num] || len(rel.pk) == 1 && rel.pk[0] == a.num && !slices.Contains(key, a.num),
		})
		if info.ReplicaIdentity == 'f' {
			info.IdentityColumns = append(info.IdentityColumns, a.name)
		}
	}
	if info.ReplicaIdentity != 'f' {
		info.IdentityColumns = keyNames(identity)
	}
	r.cat.Tables.Add(t)
	r.cat.Info[rel.name] = info
	return nil
}

func (r *catalogReader) readEnums() error {
	if len(r.enumTypes) == 0 {
		return nil
	}
	oids := make([]uint32, 0, len(r.enumTypes))
	for o := range r.enumTypes {
		oids = append(oids, o)
	}
	rows, err := r.tx.Query(r.ctx, `
SELECT enumtypid, enumlabel::text FROM pg_enum
WHERE enumtypid = ANY($1::oid[])
ORDER BY enumtypid, enumsortorder`, oids)
	if err != nil {
		return WrapSQL(err, "reading the source catalog: enum labels")
	}
	defer rows.Close()
	for rows.Next() {
		var (
			oid   uint32
			label string
		)
		if err := rows.Scan(&oid, &label); err != nil {
			return WrapSQL(err, "reading the source catalog: enum labels")
		}
		name := r.enumTypes[oid]
		r.cat.Enums[name] = append(r.cat.Enums[name], label)
	}
	if err := rows.Err(); err != nil {
		return WrapSQL(err, "reading the source catalog: enum labels")
	}
	for _, name := range r.enumTypes {
		if _, ok := r.cat.Enums[name]; !ok {
			r.cat.Enums[name] = []string{} // an enum without labels
		}
	}
	return nil
}
