package schema

import (
	"strconv"
	"strings"
)

// Column describes the source column a transformer is built for.
type Column struct {
	Table      string // qualified table name, for messages
	Name       string
	Type       Type
	NotNull    bool
	PrimaryKey bool // part of the replica's key: the replica identity index's columns under REPLICA IDENTITY USING INDEX, else the primary key's
	Unique     bool // has a single-column unique constraint or index
}

// QualifiedName is "table.column", as used in messages.
func (c Column) QualifiedName() string {
	if c.Table == "" {
		return c.Name
	}
	return c.Table + "." + c.Name
}

// Table is one source table as the catalog describes it.
type Table struct {
	Schema  string
	Name    string
	Columns []Column // in attribute order
	// Generated names the table's generated columns, which PostgreSQL
	// computes and never publishes: they are not in Columns, and the
	// replica does not have them.
	Generated []string
	// Partitioned: a partitioned table, whose rows are its partitions'
	// (read without ONLY); any other table is read with ONLY, so that no
	// row of an inheritance child no rule names is ever read through it.
	Partitioned bool
}

// QualifiedName is "schema.table", quoted where SQL needs it.
func (t *Table) QualifiedName() string { return TableName{t.Schema, t.Name}.QualifiedName() }

// Column returns the named column, or nil.
func (t *Table) Column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// TableName is a schema and a table name, both unquoted.
type TableName struct{ Schema, Name string }

// QualifiedName is schema.name, each part quoted where SQL needs it
// (QuoteIdent): how messages and generated SQL name a table.
func (n TableName) QualifiedName() string { return Qualified(n.Schema, n.Name) }

// Qualified is schemaName.name, each part quoted where SQL needs it.
func Qualified(schemaName, name string) string {
	return QuoteIdent(schemaName) + "." + QuoteIdent(name)
}

// Catalog maps table names to tables.
type Tables map[TableName]*Table

// Lookup returns the table, or nil.
func (c Tables) Lookup(schema, name string) *Table { return c[TableName{schema, name}] }

// Add puts t in the catalog, filling in each column's Table field.
func (c Tables) Add(t *Table) {
	for i := range t.Columns {
		t.Columns[i].Table = t.QualifiedName()
	}
	c[TableName{t.Schema, t.Name}] = t
}

// QuoteIdent quotes a SQL identifier exactly as PostgreSQL's quote_ident
// does: bare when it is a plain lower-case name (a-z, _, then digits) that
// is not a keyword of any category but "unreserved", quoted otherwise. A
// name left bare is therefore one PostgreSQL itself would print bare, in
// every position a name can stand (a column, a table, a type, a function,
// a role): a test holds the keyword list to the server's.
func QuoteIdent(s string) string {
	plain := s != ""
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			plain = false
			break
		}
	}
	if plain && !quotedKeywords[s] {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// QuoteIdents quotes each name with QuoteIdent and joins them with ", ".
func QuoteIdents(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = QuoteIdent(n)
	}
	return strings.Join(q, ", ")
}

// QuoteLiteral quotes s as a SQL string literal. It doubles quotes, and
// writes an E” literal with doubled backslashes when s holds one, so the
// literal means s whatever standard_conforming_strings says.
func QuoteLiteral(s string) string {
	if strings.Contains(s, `\`) {
		return "E'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// QuoteDollar quotes body (a PL/pgSQL body, say) with a dollar tag body
// does not contain: names from production's catalog may hold anything,
// "$$" or a fixed tag included, and one that closed the quote would end
// the body early.
func QuoteDollar(body string) string {
	tag := "$pgveil$"
	for i := 0; strings.Contains(body, tag); i++ {
		tag = "$pgveil" + strconv.Itoa(i) + "$"
	}
	return tag + body + tag
}

// quotedKeywords are the keywords quote_ident quotes: those of the
// "reserved", "reserved (can be function or type)" and "non-reserved
// (cannot be function or type)" categories of PostgreSQL's keyword list
// (pg_get_keywords() with catcode R, T or C). Some of them are accepted
// bare as a column name, but not everywhere a name stands (time, values
// and char as a type or function name, between in an expression), so all
// are quoted.
var quotedKeywords = map[string]bool{
	// reserved, and reserved (can be function or type)
	"all": true, "analyse": true, "analyze": true, "and": true, "any": true, "array": true, "as": true,
	"asc": true, "asymmetric": true, "authorization": true, "binary": true, "both": true, "case": true,
	"cast": true, "check": true, "collate": true, "collation": true, "column": true, "concurrently": true,
	"constraint": true, "create": true, "cross": true, "current_catalog": true, "current_date": true,
	"current_role": true, "current_schema": true, "current_time": true, "current_timestamp": true,
	"current_user": true, "default": true, "deferrable": true, "desc": true, "distinct": true, "do": true,
	"else": true, "end": true, "except": true, "false": true, "fetch": true, "for": true, "foreign": true,
	"freeze": true, "from": true, "full": true, "grant": true, "group": true, "having": true, "ilike": true,
	"in": true, "initially": true, "inner": true, "intersect": true, "into": true, "is": true,
	"isnull": true, "join": true, "lateral": true, "leading": true, "left": true, "like": true,
	"limit": true, "localtime": true, "localtimestamp": true, "natural": true, "not": true,
	"notnull": true, "null": true, "offset": true, "on": true, "only": true, "or": true, "order": true,
	"outer": true, "overlaps": true, "placing": true, "primary": true, "references": true,
	"returning": true, "right": true, "select": true, "session_user": true, "similar": true,
	"some": true, "symmetric": true, "system_user": true, "table": true, "tablesample": true,
	"then": true, "to": true, "trailing": true, "true": true, "union": true, "unique": true,
	"user": true, "using": true, "variadic": true, "verbose": true, "when": true, "where": true,
	"window": true, "with": true,
	// non-reserved (cannot be function or type)
	"between": true, "bigint": true, "bit": true, "boolean": true, "char": true, "character": true,
	"coalesce": true, "dec": true, "decimal": true, "exists": true, "extract": true, "float": true,
	"greatest": true, "grouping": true, "inout": true, "int": true, "integer": true, "interval": true,
	"least": true, "national": true, "nchar": true, "none": true, "normalize": true, "nullif": true,
	"numeric": true, "out": true, "overlay": true, "position": true, "precision": true, "real": true,
	"row": true, "setof": true, "smallint": true, "substring": true, "time": true, "timestamp": true,
	"treat": true, "trim": true, "values": true, "varchar": true, "xmlattributes": true,
	"xmlconcat": true, "xmlelement": true, "xmlexists": true, "xmlforest": true, "xmlnamespaces": true,
	"xmlparse": true, "xmlpi": true, "xmlroot": true, "xmlserialize": true, "xmltable": true,
}
