// Package target is everything pgveil does on the analytics database (the
// "target"): creating the schema of the replica, granting read-only access
// to reader roles, bulk-loading the initial snapshot, and applying masked
// changes in source-commit order, exactly once.
//
// # Schema
//
// Setup creates the internal schema "pgveil", which holds
// pgveil.checkpoint (the last applied source position of each slot) and
// pgveil.tables (the copy state of each replicated table), and a table per
// replicated table with the published columns, their source types and the
// primary key, but no other constraint: no NOT NULL outside the key, no
// default, no foreign key, no unique constraint. The replica holds what the
// source held, masked; it checks nothing the source already checked.
//
// # Exactly once
//
// An Applier applies a group of source transactions in one target
// transaction, and Commit stores the source position reached in
// pgveil.checkpoint inside that same transaction: a crash before COMMIT
// loses the changes and the checkpoint together, so a restart resumes at
// the checkpoint (ReadCheckpoint) and applies nothing twice. Commit forces
// synchronous_commit on when the session has it off, so that a position
// the source is told about is durable on the target.
//
// Changes are sent through the extended query protocol in text format,
// prepared once per connection, and pipelined: a transaction's statements
// travel in batches of up to 1000, and a small transaction (BEGIN, its
// changes, the checkpoint and COMMIT) costs one round trip. Nothing in
// Apply needs the result of a statement, so statements are only read back
// when a batch is full and at Commit, and they always run in the order
// given.
//
// TRUNCATE on the target ignores CASCADE and RESTART IDENTITY: the replica
// has no foreign keys and no sequences, and a cascaded truncate on the
// source arrives with every affected table listed.
//
// # Nothing raw leaks
//
// Values are never decoded, logged or put in errors. PostgreSQL's own error
// messages can quote a value ("invalid input syntax for type integer:
// ..."), and their detail and context lines often do; every server error
// this package returns is a *ServerError, which keeps the SQLSTATE, the
// names of the table, column, type and constraint, and the message only
// for error classes whose messages never hold data.
package target
