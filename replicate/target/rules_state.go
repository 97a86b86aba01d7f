package target

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
	"pgveil/transform"
)

// ResyncRequired marks, in pgveil.tables, a table that missed changes and
// must be copied again whatever its rules.
const ResyncRequired = "resync-required"

// CompareRules fingerprints the plan's tables and compares them with what
// pgveil.tables says each replica table was copied under. It returns the
// fingerprints, the tables to copy again (none before the initial copy,
// which copies everything), and the replica tables no rule names any more.
func CompareRules(ctx context.Context, tgt *pgx.Conn, plan *transform.Plan, keys string, copied bool) (hashes map[schema.TableName]string, resync map[schema.TableName]bool, removed []TableState, err error) {
	hashes = map[schema.TableName]string{}
	resync = map[schema.TableName]bool{}
	states, err := ReadTables(ctx, tgt)
	if err != nil {
		return nil, nil, nil, err
	}
	byName := map[schema.TableName]TableState{}
	for _, st := range states {
		byName[schema.TableName{Schema: st.Schema, Name: st.Name}] = st
	}
	for _, tp := range plan.Tables() {
		n := schema.TableName{Schema: tp.Table.Schema, Name: tp.Table.Name}
		hashes[n] = tp.Fingerprint(keys)
		st, ok := byName[n]
		// A table copied before fingerprints were recorded keeps its copy.
		if copied && (!ok || st.State != StateCopied || st.RulesHash != "" && st.RulesHash != hashes[n]) {
			resync[n] = true
		}
	}
	for _, st := range states {
		n := schema.TableName{Schema: st.Schema, Name: st.Name}
		if plan.Table(n.Schema, n.Name) == nil && st.Schema != StagingSchema {
			removed = append(removed, st)
		}
	}
	return hashes, resync, removed, nil
}

// DropRemoved removes from the replica the tables no rule names any more:
// what the rules no longer allow must not stay readable.
func DropRemoved(ctx context.Context, tgt *pgx.Conn, removed []TableState, log *slog.Logger) error {
	for _, st := range removed {
		tp := &transform.TablePlan{Table: &schema.Table{Schema: st.Schema, Name: st.Name}}
		err := pgx.BeginFunc(ctx, tgt, func(tx pgx.Tx) error {
			for _, q := range DropSQL(tp) {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("dropping %s, which no rule names any more: %w", tp.Table.QualifiedName(), err)
		}
		log.Info("table dropped from the replica: no rule names it any more", "table", tp.Table.QualifiedName())
	}
	return nil
}

// EnumsBehind returns the enum types of enums (as the plan's catalog names
// them) that have, in production (src), a label the replica's type (tgt)
// lacks.
func EnumsBehind(ctx context.Context, src, tgt *pgx.Conn, enums map[string][]string) ([]string, error) {
	const labels = `SELECT coalesce(array_agg(e.enumlabel::text), '{}') FROM pg_catalog.pg_enum e WHERE e.enumtypid = to_regtype($1)`
	var behind []string
	for name := range enums {
		var have, want []string
		if err := src.QueryRow(ctx, labels, name).Scan(&want); err != nil {
			return nil, fmt.Errorf("reading enum %s in production: %w", name, err)
		}
		if err := tgt.QueryRow(ctx, labels, name).Scan(&have); err != nil {
			return nil, fmt.Errorf("reading enum %s in the replica: %w", name, err)
		}
		for _, l := range want {
			if !slices.Contains(have, l) {
				behind = append(behind, name)
				break
			}
		}
	}
	slices.Sort(behind)
	return behind, nil
}
