// Package source is everything pgveil does on the production (source)
// server except the replication stream itself: it reads the catalog of the
// replicated tables (ReadCatalog, ListTables), checks the prerequisites of
// logical replication (ReadServer, Check), decides and maintains the
// publication (PlanPublication, EnsurePublication), and evaluates the row
// filters that cannot be pushed down into the publication (Filter).
//
// Production must never break because of pgveil (guarantee 5 of the
// design). On PostgreSQL 15 a publication whose column list leaves out a
// replica identity column, or whose row filter uses a column outside the
// replica identity, makes every UPDATE and DELETE of that table fail; so
// does publishing a table that has no replica identity at all. This package
// therefore:
//
//   - always publishes the replica identity columns;
//   - pushes a table's `where` down as a row filter only when PostgreSQL
//     itself says it references replica identity columns alone and is
//     allowed in a row filter (the test runs in a transaction that is
//     rolled back, so production is not changed by it);
//   - before committing any change to the publication, re-reads the live
//     catalog, checks every table (and every leaf partition) again, reads
//     the publication back, and asks PostgreSQL to plan an UPDATE and a
//     DELETE of every published table (EXPLAIN only: nothing runs, no
//     trigger fires), which raises the very error production would get;
//     any failure rolls everything back;
//   - takes locks only with a short lock_timeout and a statement_timeout.
//
// No source value ever appears in an error: catalog and DDL errors hold SQL
// text and names only, and Filter reports the SQLSTATE of a failed
// evaluation, never the server's message (which may quote a row value).
package source
