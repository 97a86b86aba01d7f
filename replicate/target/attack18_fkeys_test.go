package target

import (
	"strings"
	"testing"

	"pgveil/rules/refs"
	"pgveil/transform"
)

// TestAttack18ForeignKeyShapes: the shapes a developer gives production's
// references. A composite key declared in another column order than the
// primary key, and a self-reference, hold; a reference to a unique column
// that is not the replica's key is left out (the replica has no such
// unique index: ADD CONSTRAINT would fail at every start); a declared
// key whose name is the one pgveil would generate for a reference in the
// rules does not make the two collide on the table.
func TestAttack18ForeignKeyShapes(t *testing.T) {
	parent := fkTable("parent", "", "*x:integer:keep", "*y:integer:keep", "code:text:keep")
	child := fkTable("child", "", "*id:integer:keep", "a:integer:keep", "b:integer:keep", "code:text:keep", "q:integer:hash", "p_id:integer:hash")
	emp := fkTable("emp", "", "*id:integer:hash", "manager_id:integer:hash")
	plan := transform.NewPlan([]*transform.TablePlan{parent, child, emp})
	m := &refs.Model{}
	// child (a, b) -> parent (y, x): the primary key is (x, y).
	m.Add(ref("child.a", "parent.y", refs.Declared, "child_comp_fkey"))
	m.Add(ref("child.b", "parent.x", refs.Declared, "child_comp_fkey"))
	m.Add(ref("child.code", "parent.code", refs.Declared, "child_code_fkey"))
	m.Add(ref("emp.manager_id", "emp.id", refs.Declared, "emp_manager_fkey"))
	// Production named a key on q the way pgveil names one on p_id.
	m.Add(ref("child.q", "emp.id", refs.Declared, "child_p_id_fkey"))
	m.Add(ref("child.p_id", "emp.id", refs.Rules, ""))
	f := PlanForeignKeys(m, plan)
	keys := map[string]ForeignKey{}
	for _, k := range f.Keys() {
		keys[k.Table.Name+"."+strings.Join(k.Columns, ",")] = k
	}
	if k, ok := keys["child.a,b"]; !ok || strings.Join(k.RefColumns, ",") != "y,x" {
		t.Errorf("composite key in another order than the primary key: %+v (left out: %+v)", k, f.LeftOut())
	}
	if _, ok := keys["emp.manager_id"]; !ok {
		t.Errorf("self-reference left out: %+v", f.LeftOut())
	}
	if _, ok := keys["child.code"]; ok {
		t.Error("a reference to a unique column that is not the replica's key is planned: ADD CONSTRAINT fails at every start")
	}
	q, p := keys["child.q"], keys["child.p_id"]
	if q.Name != "child_p_id_fkey" || p.Name == "" || p.Name == q.Name {
		t.Errorf("names on child: declared %q, from the rules %q: must differ, production's kept", q.Name, p.Name)
	}
}
