package replicate

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

// Drift is what the source holds that the rules do not say: schema changes
// made in production since the rules were written or the plan was built.
// Nothing it lists is replicated; pgveil reports it (log, metrics, status)
// so that someone writes a rule.
type Drift struct {
	// Unruled are columns of replicated tables that no rule names, by
	// table: they are not replicated until a rule names them.
	Unruled map[string][]string
	// Missing are columns the rules name that the source no longer has
	// (dropped or renamed), by table.
	Missing map[string][]string
	// TypeChanged are columns whose type differs from the running plan's,
	// as "column: old -> new", by table.
	TypeChanged map[string][]string
	// NewTables are source tables no rule names.
	NewTables []string
	// MissingTables are tables the rules name that the source lacks.
	MissingTables []string
}

// Empty reports whether nothing drifted.
func (d *Drift) Empty() bool {
	return len(d.Unruled) == 0 && len(d.Missing) == 0 && len(d.TypeChanged) == 0 && len(d.NewTables) == 0 && len(d.MissingTables) == 0
}

// String lists the drift in a few lines, names only.
func (d *Drift) String() string {
	var b strings.Builder
	section := func(title string, m map[string][]string) {
		for _, t := range sortedKeys(m) {
			fmt.Fprintf(&b, "%s %s: %s\n", title, t, strings.Join(m[t], ", "))
		}
	}
	section("unruled columns in", d.Unruled)
	section("columns gone from", d.Missing)
	section("column types changed in", d.TypeChanged)
	if len(d.NewTables) > 0 {
		fmt.Fprintf(&b, "tables no rule names: %s\n", strings.Join(d.NewTables, ", "))
	}
	if len(d.MissingTables) > 0 {
		fmt.Fprintf(&b, "tables the rules name that the source lacks: %s\n", strings.Join(d.MissingTables, ", "))
	}
	return b.String()
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DetectDrift compares the source catalog with the rules and, when plan is
// not nil, with the column types the running plan was built for.
func DetectDrift(ctx context.Context, src *pgx.Conn, cfg *rules.Config, plan *transform.Plan) (*Drift, error) {
	d := &Drift{Unruled: map[string][]string{}, Missing: map[string][]string{}, TypeChanged: map[string][]string{}}
	all, err := schema.ListTables(ctx, src)
	if err != nil {
		return nil, err
	}
	ruled := map[schema.TableName]*rules.TableRule{}
	names := make([]schema.TableName, len(cfg.Tables))
	for i, t := range cfg.Tables {
		names[i] = schema.TableName{Schema: t.Schema, Name: t.Name}
		ruled[names[i]] = t
	}
	for _, n := range all {
		if ruled[n] == nil {
			d.NewTables = append(d.NewTables, n.QualifiedName())
		}
	}
	cat, err := schema.ReadCatalog(ctx, src, names)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		name := n.QualifiedName()
		t := cat.Tables[n]
		if t == nil {
			d.MissingTables = append(d.MissingTables, name)
			continue
		}
		byRule := map[string]bool{}
		for _, c := range ruled[n].Columns {
			byRule[c.Name] = true
			if t.Column(c.Name) == nil {
				d.Missing[name] = append(d.Missing[name], c.Name)
			}
		}
		for _, c := range t.Columns {
			if !byRule[c.Name] {
				d.Unruled[name] = append(d.Unruled[name], c.Name)
			}
		}
		if plan == nil {
			continue
		}
		if tp := plan.Table(n.Schema, n.Name); tp != nil {
			for _, pc := range tp.Columns {
				if c := t.Column(pc.Column.Name); c != nil && c.Type.String() != pc.Column.Type.String() {
					d.TypeChanged[name] = append(d.TypeChanged[name], fmt.Sprintf("%s: %s -> %s", c.Name, pc.Column.Type, c.Type))
				}
			}
		}
	}
	for _, m := range []map[string][]string{d.Unruled, d.Missing, d.TypeChanged} {
		for k := range m {
			sort.Strings(m[k])
		}
	}
	return d, nil
}
