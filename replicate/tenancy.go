package replicate

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"pgveil/replicate/target"
	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

// TargetTenancy is the tenancy section of cfg as the target applies it,
// or nil when cfg has none.
func TargetTenancy(cfg *rules.Config) *target.Tenancy {
	if cfg.Tenancy == nil {
		return nil
	}
	tn := &target.Tenancy{
		RolePrefix:    cfg.Tenancy.RolePrefix,
		Group:         cfg.Tenancy.Group,
		Impersonators: cfg.Tenancy.Impersonators,
		Readers:       cfg.Target.Readers,
		Tables:        map[schema.TableName]target.TenantTable{},
	}
	for _, t := range cfg.Tables {
		if col, shared := cfg.TenantOf(t); col != "" || shared {
			tn.Tables[schema.TableName{Schema: t.Schema, Name: t.Name}] = target.TenantTable{Column: col, Shared: shared}
		}
	}
	return tn
}

// tenancyWatch checks, for the monitor, that the replica's tables still
// have row level security: with it turned off (by hand), a tenant table's
// grant to the tenant group would show every tenant every row.
type tenancyWatch struct {
	tn   *target.Tenancy // nil: nothing to watch
	dsn  string
	plan *transform.Plan
	conn *pgx.Conn
}

// check returns the replicated tables tenants can read without row level
// security, and the views that would show tenants other tenants' rows,
// and reports the counts to obs (zeros without a tenancy section). It
// logs (and retries at the next tick) what it cannot read.
func (w *tenancyWatch) check(ctx context.Context, log *slog.Logger, obs Observer) (unprotected, leaky []string) {
	if w.tn == nil {
		obs.Tenancy(0, 0, 0)
		return nil, nil
	}
	if w.conn == nil || w.conn.IsClosed() {
		c, err := connectTarget(ctx, w.dsn)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("checking the replica's row level security", "error", err.Error())
			}
			return nil, nil
		}
		w.conn = c
	}
	var names []schema.TableName
	for _, t := range w.plan.Tables() {
		names = append(names, tableName(t))
	}
	st, err := target.ReadTenancy(ctx, w.conn, w.tn, names)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("checking the replica's row level security", "error", err.Error())
		}
		w.close()
		return nil, nil
	}
	obs.Tenancy(st.Roles, len(st.Unprotected), len(st.Leaky))
	return st.Unprotected, st.Leaky
}

func (w *tenancyWatch) close() {
	if w.conn != nil {
		w.conn.Close(context.Background())
		w.conn = nil
	}
}
