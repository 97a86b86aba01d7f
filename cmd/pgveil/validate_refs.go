package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/schema"
)

// This file holds validate's reference check: every column that refers to
// a key is masked as the key is (docs/rules.md, "References and joins").

// checkReferencesOnline reads the source's references (foreign keys on
// tables and partitions, and inferred ones, tried on the rules' tables
// only) and checks the rules against them and against the rules' own
// references.
func checkReferencesOnline(ctx context.Context, src *pgx.Conn, cfg *rules.Config) (rules.Problems, *refs.Model, error) {
	m, err := sourceReferences(ctx, src, cfg)
	if err != nil {
		return nil, nil, err
	}
	return refs.Check(cfg, m), m.WithRules(cfg), nil
}

// sourceReferences is the source's reference model as validate and
// report read it: foreign keys on tables and partitions, and references
// inferred on the rules' tables (confirmed by sampled overlap). Callers
// add the rules' own with WithRules.
func sourceReferences(ctx context.Context, src *pgx.Conn, cfg *rules.Config) (*refs.Model, error) {
	m, err := refs.Read(ctx, src, refs.Options{Infer: true, Tables: ruleTableNames(cfg)})
	if err != nil {
		return nil, fmt.Errorf("reading the source's references: %w", err)
	}
	return m, nil
}

// printReferenceProblems prints the problems of refs.Check, one per line.
func printReferenceProblems(e *env, ps rules.Problems) {
	for _, p := range ps {
		fmt.Fprintln(e.stderr, p.String())
	}
}

// referenceSummary says how many references between the rules' tables
// were checked, by origin.
func referenceSummary(cfg *rules.Config, m *refs.Model) string {
	replicated := map[schema.TableName]bool{}
	for _, n := range ruleTableNames(cfg) {
		replicated[n] = true
	}
	counts := map[refs.Origin]int{}
	n := 0
	for _, r := range m.Refs {
		if replicated[r.From.Table] && replicated[r.To.Table] {
			counts[r.Origin]++
			n++
		}
	}
	var parts []string
	for _, o := range []refs.Origin{refs.Declared, refs.Partition, refs.Inferred, refs.Rules} {
		if counts[o] > 0 {
			label := o.String()
			if counts[o] > 1 && (o == refs.Declared || o == refs.Partition) {
				label = strings.Replace(label, "key", "keys", 1)
			}
			parts = append(parts, fmt.Sprintf("%d %s", counts[o], label))
		}
	}
	s := fmt.Sprintf("references: %d between the rules' tables checked", n)
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s + ": each referencing column is masked as its key, so joins work on the replica"
}

// offlineReferenceSummary says what validate --offline checked of the
// references, and what it could not.
func offlineReferenceSummary(cfg *rules.Config) string {
	n, none := 0, 0
	for _, t := range cfg.Tables {
		for _, r := range t.References {
			if r.None {
				none++
			} else {
				n++
			}
		}
	}
	return fmt.Sprintf("references: offline, only the %d declared in the rules were checked (%d marked none); validate online also checks the source's foreign keys and the references it infers",
		n, none)
}
