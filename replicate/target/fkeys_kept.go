package target

import (
	"context"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
	"pgveil/transform"
)

// PresentForeignKeys is the plan for when production's foreign keys
// cannot be read: the keys the replica has now (deferred and validated,
// between tables of plan) that still hold under plan's rules, so that an
// attempt that could not read production keeps them instead of dropping
// every one. Their origin is not known (they are shown as foreign keys);
// the next attempt that reads production plans them afresh.
func PresentForeignKeys(ctx context.Context, conn *pgx.Conn, plan *transform.Plan) (*ForeignKeys, error) {
	f := &ForeignKeys{}
	var tables []schema.TableName
	for _, t := range plan.Tables() {
		tables = append(tables, schema.TableName{Schema: t.Table.Schema, Name: t.Table.Name})
	}
	present, err := readForeignKeys(ctx, conn, tables)
	if err != nil {
		return nil, err
	}
	for _, p := range present {
		child := plan.Table(p.Table.Schema, p.Table.Name)
		if !p.deferred || !p.valid || child == nil {
			continue
		}
		if holds(p.ForeignKey, child, plan.Table(p.RefTable.Schema, p.RefTable.Name)) == "" {
			f.keys = append(f.keys, p.ForeignKey)
		}
	}
	return f, nil
}
