package replicate

import (
	"pgveil/replicate/target"
	"pgveil/rules"
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
		Tables:        map[transform.TableName]target.TenantTable{},
	}
	for _, t := range cfg.Tables {
		if col, shared := cfg.TenantOf(t); col != "" || shared {
			tn.Tables[transform.TableName{Schema: t.Schema, Name: t.Name}] = target.TenantTable{Column: col, Shared: shared}
		}
	}
	return tn
}
