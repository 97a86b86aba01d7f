// Package transform masks PostgreSQL values.
//
// A Transformer turns one value, in PostgreSQL's text format, into its masked
// form. Transformers are pure functions of (secret, column, value): they do no
// I/O, hold no mutable state and are safe for concurrent use. The same input
// and secret always give the same output, in every table and every run, so
// joins and counts survive masking.
//
// Values arrive in the text format that PostgreSQL sends over logical
// replication and COPY, with DateStyle=ISO, IntervalStyle=postgres and
// extra_float_digits=3 on the session that produced them. Transformers parse
// only what they need to: keep passes bytes through untouched.
//
// Errors never contain the value being masked: a transformer that cannot parse
// its input says what it expected, and the Plan adds the table and column.
//
// The Registry maps the names used in YAML rules (hash, fake, truncate, ...)
// to constructors with typed parameter definitions; a Plan holds, per table,
// the transformer of every published column and masks whole rows.
package transform
