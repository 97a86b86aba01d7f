// Package metabase runs the catalog queries Metabase's PostgreSQL driver
// sends when it syncs a database, so that tests can check what Metabase
// would see of the replica as each of its roles: which tables it lists,
// which columns it marks as primary keys, which foreign keys it offers as
// joins. The queries are written out here as Metabase's driver builds
// them (its HoneySQL rendered to SQL, parameters as $n), a test fixture of
// our own: when Metabase changes them, change them here.
//
// Where they come from, in the metabase/metabase repository:
//
//   - TablePrivileges: current-user-table-privileges in
//     src/metabase/driver/postgres.clj; sync keeps the tables whose select
//     is true (have-select-privilege-fn, in
//     src/metabase/driver/sql_jdbc/sync/describe_database.clj);
//   - Tables: get-tables-sql in src/metabase/driver/postgres.clj, which
//     describe-database filters with the table privileges;
//   - Fields: describe-fields-sql in src/metabase/driver/postgres.clj
//     (primary keys from information_schema.table_constraints and
//     key_column_usage);
//   - ForeignKeys: describe-fks-sql in src/metabase/driver/postgres.clj.
//
// Metabase connects with pgjdbc, which sends each of them as an extended
// query, as pgx does.
package metabase

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Querier is what the queries run on: a *pgx.Conn, a pgx.Tx or a pool.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// TablePrivilege is one row of Metabase's table-privileges query.
type TablePrivilege struct {
	Schema, Table                  string
	Select, Update, Insert, Delete bool
}

// tablePrivilegesSQL is current-user-table-privileges (postgres.clj).
const tablePrivilegesSQL = `with table_privileges as (
 select
   NULL as role,
   t.schemaname as schema,
   t.objectname as table,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'update') as update,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'select') as select,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'insert') as insert,
   pg_catalog.has_table_privilege(     current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'delete') as delete
 from (
   select schemaname, tablename as objectname from pg_catalog.pg_tables
   union
   select schemaname, viewname as objectname from pg_catalog.pg_views
   union
   select schemaname, matviewname as objectname from pg_catalog.pg_matviews
 ) t
 where t.schemaname !~ '^pg_'
   and t.schemaname <> 'information_schema'
   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')
)
select t.*
from table_privileges t`

// TablePrivileges runs Metabase's table-privileges query and returns its
// rows with at least one privilege, as Metabase keeps them, sorted.
func TablePrivileges(ctx context.Context, q Querier) ([]TablePrivilege, error) {
	rows, err := q.Query(ctx, tablePrivilegesSQL)
	if err != nil {
		return nil, fmt.Errorf("metabase: table privileges: %w", err)
	}
	var out []TablePrivilege
	var role *string
	var p TablePrivilege
	_, err = pgx.ForEachRow(rows, []any{&role, &p.Schema, &p.Table, &p.Update, &p.Select, &p.Insert, &p.Delete}, func() error {
		if p.Select || p.Update || p.Insert || p.Delete {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("metabase: table privileges: %w", err)
	}
	slices.SortFunc(out, func(a, b TablePrivilege) int {
		return cmp.Or(strings.Compare(a.Schema, b.Schema), strings.Compare(a.Table, b.Table))
	})
	return out, nil
}

// Table is one table Metabase's describe-database syncs.
type Table struct {
	Schema, Name, Type string
	Description        *string
	EstimatedRows      *int64
}

// tablesSQL is get-tables-sql (postgres.clj) with schema names, as
// HoneySQL renders it for the :ansi dialect.
const tablesSQL = `SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", "stat"."n_live_tup" AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = 0) AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ '^pg_') AND ("n"."nspname" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" = ANY($1::text[])) ORDER BY "type" ASC, "schema" ASC, "name" ASC`

// Tables runs describe-database as Metabase's PostgreSQL driver does: the
// tables, views and materialized views of schemas, kept when the table
// privileges query says the current role may SELECT them.
func Tables(ctx context.Context, q Querier, schemas []string) ([]Table, error) {
	privs, err := TablePrivileges(ctx, q)
	if err != nil {
		return nil, err
	}
	canSelect := map[[2]string]bool{}
	for _, p := range privs {
		canSelect[[2]string{p.Schema, p.Table}] = p.Select
	}
	rows, err := q.Query(ctx, tablesSQL, schemas)
	if err != nil {
		return nil, fmt.Errorf("metabase: describe-database: %w", err)
	}
	var out []Table
	var t Table
	var typ *string
	_, err = pgx.ForEachRow(rows, []any{&t.Schema, &t.Name, &typ, &t.Description, &t.EstimatedRows}, func() error {
		t.Type = ""
		if typ != nil {
			t.Type = *typ
		}
		// Foreign tables are probed with a SELECT instead; the replica
		// has none.
		if canSelect[[2]string{t.Schema, t.Name}] {
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("metabase: describe-database: %w", err)
	}
	return out, nil
}

// Field is one row of describe-fields.
type Field struct {
	Name, DatabaseType      string
	Position                int
	Schema, Table           string
	PK                      bool
	Comment                 *string
	Required, AutoIncrement bool
}

// fieldsSQL is describe-fields-sql (postgres.clj) with schema names, as
// HoneySQL renders it.
const fieldsSQL = `SELECT "c"."column_name" AS "name", CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name") ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type", "c"."ordinal_position" - 1 AS "database-position", "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name", "pk"."column_name" IS NOT NULL AS "pk?", COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment", (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO') AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required", (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment" FROM "information_schema"."columns" AS "c" LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name" FROM "information_schema"."table_constraints" AS "tc" INNER JOIN "information_schema"."key_column_usage" AS "kc" ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name") WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk" ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name") WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" = ANY($1::text[]))
UNION ALL
SELECT "pa"."attname" AS "name", CASE WHEN "ptn"."nspname" IN ('public', 'pg_catalog') THEN FORMAT('%s', "pt"."typname") ELSE FORMAT('"%s"."%s"', "ptn"."nspname", "pt"."typname") END AS "database-type", "pa"."attnum" - 1 AS "database-position", "pn"."nspname" AS "table-schema", "pc"."relname" AS "table-name", FALSE AS "pk?", NULL AS "field-comment", FALSE AS "database-required", FALSE AS "database-is-auto-increment" FROM "pg_catalog"."pg_class" AS "pc" INNER JOIN "pg_catalog"."pg_namespace" AS "pn" ON "pn"."oid" = "pc"."relnamespace" INNER JOIN "pg_catalog"."pg_attribute" AS "pa" ON "pa"."attrelid" = "pc"."oid" INNER JOIN "pg_catalog"."pg_type" AS "pt" ON "pt"."oid" = "pa"."atttypid" INNER JOIN "pg_catalog"."pg_namespace" AS "ptn" ON "ptn"."oid" = "pt"."typnamespace" WHERE ("pc"."relkind" = 'm') AND ("pa"."attnum" >= 1) AND ("pn"."nspname" = ANY($1::text[]))
ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC`

// Fields runs describe-fields for the tables of schemas.
func Fields(ctx context.Context, q Querier, schemas []string) ([]Field, error) {
	rows, err := q.Query(ctx, fieldsSQL, schemas)
	if err != nil {
		return nil, fmt.Errorf("metabase: describe-fields: %w", err)
	}
	var out []Field
	var f Field
	var pos int32
	_, err = pgx.ForEachRow(rows, []any{&f.Name, &f.DatabaseType, &pos, &f.Schema, &f.Table, &f.PK, &f.Comment, &f.Required, &f.AutoIncrement}, func() error {
		f.Position = int(pos)
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("metabase: describe-fields: %w", err)
	}
	return out, nil
}

// ForeignKey is one row of describe-fks: a column of a table referencing
// a column of another.
type ForeignKey struct {
	FKSchema, FKTable, FKColumn string
	PKSchema, PKTable, PKColumn string
}

// foreignKeysSQL is describe-fks-sql (postgres.clj) with schema names, as
// HoneySQL renders it.
const foreignKeysSQL = `SELECT "fk_ns"."nspname" AS "fk-table-schema", "fk_table"."relname" AS "fk-table-name", "fk_column"."attname" AS "fk-column-name", "pk_ns"."nspname" AS "pk-table-schema", "pk_table"."relname" AS "pk-table-name", "pk_column"."attname" AS "pk-column-name" FROM "pg_constraint" AS "c" INNER JOIN "pg_class" AS "fk_table" ON "c"."conrelid" = "fk_table"."oid" INNER JOIN "pg_namespace" AS "fk_ns" ON "c"."connamespace" = "fk_ns"."oid" INNER JOIN "pg_attribute" AS "fk_column" ON "c"."conrelid" = "fk_column"."attrelid" INNER JOIN "pg_class" AS "pk_table" ON "c"."confrelid" = "pk_table"."oid" INNER JOIN "pg_namespace" AS "pk_ns" ON "pk_table"."relnamespace" = "pk_ns"."oid" INNER JOIN "pg_attribute" AS "pk_column" ON "c"."confrelid" = "pk_column"."attrelid" WHERE fk_ns.nspname !~ '^information_schema|catalog_history|pg_' AND ("c"."contype" = 'f'::char) AND ("fk_column"."attnum" = ANY(c.conkey)) AND ("pk_column"."attnum" = ANY(c.confkey)) AND ("fk_ns"."nspname" = ANY($1::text[])) ORDER BY "fk-table-schema" ASC, "fk-table-name" ASC`

// ForeignKeys runs describe-fks for the tables of schemas. Like
// Metabase's query, it pairs every column of a multi-column key with
// every column of the key it references.
func ForeignKeys(ctx context.Context, q Querier, schemas []string) ([]ForeignKey, error) {
	rows, err := q.Query(ctx, foreignKeysSQL, schemas)
	if err != nil {
		return nil, fmt.Errorf("metabase: describe-fks: %w", err)
	}
	var out []ForeignKey
	var k ForeignKey
	_, err = pgx.ForEachRow(rows, []any{&k.FKSchema, &k.FKTable, &k.FKColumn, &k.PKSchema, &k.PKTable, &k.PKColumn}, func() error {
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("metabase: describe-fks: %w", err)
	}
	return out, nil
}
