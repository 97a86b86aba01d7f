package target

import (
	"strings"
	"testing"

	"pgveil/rules/refs"
	"pgveil/schema"
	"pgveil/transform"
)

// fkTable is a table plan for the foreign key tests: columns are
// "name:type:rule", a * before the name marks a key column.
func fkTable(name, where string, cols ...string) *transform.TablePlan {
	t := &schema.Table{Schema: "public", Name: name}
	tp := &transform.TablePlan{Table: t, Where: where}
	for _, c := range cols {
		f := strings.Split(c, ":")
		col := schema.Column{Table: "public." + name, Name: strings.TrimPrefix(f[0], "*"), Type: schema.MustType(f[1]), PrimaryKey: strings.HasPrefix(f[0], "*")}
		if f[2] == "drop" {
			tp.Dropped = append(tp.Dropped, col.Name)
			continue
		}
		rule := transform.Rule{Name: f[2]}
		if f[2] == "truncate" {
			rule.Args = transform.Args{"step": 10}
		}
		t.Columns = append(t.Columns, col)
		tp.Columns = append(tp.Columns, transform.ColumnPlan{Column: col, Rule: rule})
	}
	return tp
}

func ref(from, to string, origin refs.Origin, constraint string) refs.Ref {
	col := func(s string) refs.Column {
		p := strings.Split(s, ".")
		return refs.Column{Table: refs.Table("public", p[0]), Name: p[1]}
	}
	return refs.Ref{From: col(from), To: col(to), Origin: origin, Constraint: constraint}
}

func TestPlanForeignKeys(t *testing.T) {
	plan := transform.NewPlan([]*transform.TablePlan{
		fkTable("customer", "", "*id:bigint:hash", "store_id:integer:keep", "name:text:drop"),
		fkTable("store", "", "*store_id:integer:keep", "manager_staff_id:integer:hash", "code:integer:keep"),
		fkTable("staff", "active", "*staff_id:integer:hash"),
		fkTable("payment", "amount > 0", "*id:bigint:keep", "customer_id:bigint:hash", "staff_id:integer:hash", "rental_id:integer:keep",
			"amount:numeric:truncate", "note_id:bigint:drop", "code:integer:keep", "store_id:bigint:hash"),
		fkTable("rental", "", "*rental_id:integer:hash"),
	})
	m := &refs.Model{}
	for _, r := range []refs.Ref{
		ref("payment.customer_id", "customer.id", refs.Partition, "payment_p2022_01_customer_id_fkey"),
		ref("customer.store_id", "store.store_id", refs.Declared, "customer_store_id_fkey"),
		ref("store.manager_staff_id", "staff.staff_id", refs.Rules, ""),
		ref("payment.rental_id", "rental.rental_id", refs.Declared, "payment_rental_id_fkey"),
		ref("payment.note_id", "customer.id", refs.Declared, "payment_note_fkey"),
		ref("payment.code", "store.code", refs.Declared, "payment_code_fkey"),
		ref("payment.store_id", "store.store_id", refs.Inferred, ""),
		ref("payment.staff_id", "address.staff_id", refs.Declared, "payment_address_fkey"),
		ref("film.store_id", "store.store_id", refs.Declared, "film_store_fkey"),
		ref("payment.store_id", "rental.rental_id", refs.Rules, ""),
		ref("payment.amount", "rental.rental_id", refs.Rules, ""),
	} {
		m.Add(r)
	}
	f := PlanForeignKeys(m, plan)
	var got []string
	for _, k := range f.Keys() {
		got = append(got, k.Name+" "+k.String())
	}
	want := []string{
		"customer_store_id_fkey public.customer (store_id) -> public.store (store_id)",
		"payment_customer_id_fkey public.payment (customer_id) -> public.customer (id)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("keys:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	reasons := map[string]string{}
	for _, l := range f.LeftOut() {
		reasons[l.Key.Table.Name+"."+strings.Join(l.Key.Columns, ",")] = l.Reason
	}
	for col, want := range map[string]string{
		"store.manager_staff_id": "the referenced table public.staff has a where",
		"payment.rental_id":      "payment.rental_id is masked with keep and the key public.rental.rental_id with hash",
		"payment.note_id":        "the column public.payment.note_id is dropped by the rules",
		"payment.code":           "the replica's key of public.store is (store_id), not the referenced columns (code)",
		"payment.staff_id":       "the referenced table public.address is not replicated",
		"payment.store_id":       "public.payment.store_id is bigint and the key public.rental.rental_id is integer",
		"payment.amount":         "masked with {truncate: ...} and the key public.rental.rental_id with hash",
	} {
		if !strings.Contains(reasons[col], want) {
			t.Errorf("%s: reason %q, want it to say %q", col, reasons[col], want)
		}
		delete(reasons, col)
	}
	if len(reasons) > 0 {
		t.Errorf("more left out than expected (inferred references and tables not replicated are not the replica's): %v", reasons)
	}
	if strings.Contains(f.LeftOut()[0].Reason, "step") {
		t.Error("a reason prints a rule's parameters")
	}
}

func TestForeignKeyNames(t *testing.T) {
	plan := transform.NewPlan([]*transform.TablePlan{
		fkTable("a", "", "*id:integer:keep", "b_id:integer:keep", "c:integer:keep"),
		fkTable("b", "", "*id:integer:keep"),
	})
	long := strings.Repeat("x", 70)
	m := &refs.Model{}
	m.Add(ref("a.b_id", "b.id", refs.Rules, ""))
	m.Add(ref("a.c", "b.id", refs.Declared, "a_b_id_fkey"))
	m.Add(ref("a.id", "b.id", refs.Declared, long))
	var names []string
	for _, k := range PlanForeignKeys(m, plan).Keys() {
		names = append(names, k.Name)
	}
	want := []string{"a_b_id_fkey1", "a_b_id_fkey", strings.Repeat("x", 63)}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("names %q, want %q (production's names first, unique per table, at most 63 bytes)", names, want)
	}
	k := PlanForeignKeys(m, plan).Keys()[0]
	if sql := k.addSQL(); !strings.Contains(sql, "DEFERRABLE INITIALLY DEFERRED NOT VALID") || strings.Contains(sql, "CASCADE") {
		t.Errorf("add: %s", sql)
	}
}

func TestTruncateDropsKeysOfTablesLeftBehind(t *testing.T) {
	child, parent := refs.Table("public", "payment"), refs.Table("public", "customer")
	f := &ForeignKeys{keys: []ForeignKey{{Name: "p_fk", Table: child, Columns: []string{"customer_id"}, RefTable: parent, RefColumns: []string{"id"}}}}
	other := refs.Table("public", "other")
	if before, after := f.truncateSQL([]schema.TableName{other}); before != nil || after != nil {
		t.Errorf("a table without keys: %q %q", before, after)
	}
	before, after := f.truncateSQL([]schema.TableName{parent, child})
	if strings.Join(before, ";") != "SET CONSTRAINTS ALL IMMEDIATE" || strings.Join(after, ";") != "SET CONSTRAINTS ALL DEFERRED" {
		t.Errorf("both truncated: %q %q", before, after)
	}
	if before, _ := f.truncateSQL([]schema.TableName{child}); len(before) != 1 {
		t.Errorf("the referencing table alone: %q", before)
	}
	before, _ = f.truncateSQL([]schema.TableName{parent})
	if len(before) != 3 || before[1] != `ALTER TABLE public.payment DROP CONSTRAINT IF EXISTS p_fk` || !strings.Contains(before[2], "left out") {
		t.Errorf("the referenced table alone: %q", before)
	}
	var nilKeys *ForeignKeys
	if before, after := nilKeys.truncateSQL([]schema.TableName{parent}); before != nil || after != nil {
		t.Errorf("no keys: %q %q", before, after)
	}
}
