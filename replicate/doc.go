// Package replicate keeps the analytics database equal to mask(production):
// it sets up the source (publication, slot) and the target (schema,
// checkpoint), copies an initial consistent snapshot, then applies the
// pgoutput stream in source-commit order, exactly once.
//
// The parts: package source reads the production catalog and manages the
// publication; package target writes the analytics database; package
// pgoutput decodes the stream; package pgcopy reads and writes COPY text.
// This package wires them: Prepare checks everything and builds the plan,
// Run copies and streams until its context ends or an error stops it.
//
// Exactly once: every target transaction stores the source position it
// reaches in pgveil.checkpoint; the slot is acknowledged only up to the
// position the target has committed; a restart resumes at the checkpoint
// and skips transactions at or below it.
package replicate
