package transform_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

// saasColumns are examples/saas/schema.sql's tables and column types, in
// attribute order: the catalog the saas rules compile against.
var saasColumns = []struct {
	table string
	cols  [][2]string // name, type
}{
	{"accounts", [][2]string{{"id", "bigint"}, {"name", "text"}, {"plan", "text"}, {"country", "character(2)"}, {"created_at", "timestamp with time zone"}}},
	{"users", [][2]string{{"id", "bigint"}, {"account_id", "bigint"}, {"email", "text"}, {"full_name", "text"}, {"password_hash", "text"}, {"role", "text"}, {"last_login_at", "timestamp with time zone"}, {"created_at", "timestamp with time zone"}}},
	{"customers", [][2]string{{"id", "bigint"}, {"account_id", "bigint"}, {"email", "text"}, {"full_name", "text"}, {"phone", "text"}, {"street", "text"}, {"city", "text"}, {"zip", "text"}, {"country", "character(2)"}, {"birth_date", "date"}, {"notes", "text"}, {"profile", "jsonb"}, {"created_at", "timestamp with time zone"}, {"deleted_at", "timestamp with time zone"}}},
	{"orders", [][2]string{{"id", "bigint"}, {"account_id", "bigint"}, {"customer_id", "bigint"}, {"status", "text"}, {"total", "numeric(12,2)"}, {"currency", "character(3)"}, {"shipping_address", "text"}, {"created_at", "timestamp with time zone"}}},
	{"payments", [][2]string{{"id", "bigint"}, {"order_id", "bigint"}, {"amount", "numeric(12,2)"}, {"method", "text"}, {"card_last4", "character(4)"}, {"iban", "text"}, {"paid_at", "timestamp with time zone"}}},
	{"support_tickets", [][2]string{{"id", "bigint"}, {"account_id", "bigint"}, {"customer_id", "bigint"}, {"subject", "text"}, {"body", "text"}, {"metadata", "jsonb"}, {"status", "text"}, {"created_at", "timestamp with time zone"}}},
	{"events", [][2]string{{"id", "bigint"}, {"account_id", "bigint"}, {"user_id", "bigint"}, {"kind", "text"}, {"ip", "inet"}, {"properties", "jsonb"}, {"occurred_at", "timestamp with time zone"}}},
}

// saasRow returns row i of a saas table: realistic values, varied by i.
func saasRow(table string, i int) map[string]string {
	ts := fmt.Sprintf("2025-%02d-%02d %02d:%02d:%02d.%06d+00", 1+i%12, 1+i%28, i%24, i%60, (i*7)%60, i*37%1000000)
	switch table {
	case "accounts":
		return map[string]string{"id": fmt.Sprint(i), "name": fmt.Sprintf("Acme %d GmbH", i), "plan": "team", "country": "DE", "created_at": ts}
	case "users":
		return map[string]string{"id": fmt.Sprint(i), "account_id": fmt.Sprint(i % 100), "email": fmt.Sprintf("user%d@acme%d.example", i, i%100),
			"full_name": fmt.Sprintf("Alice Martin%d", i), "password_hash": "$2a$10$abcdefghijklmnopqrstuv", "role": "member", "last_login_at": ts, "created_at": ts}
	case "customers":
		return map[string]string{"id": fmt.Sprint(i), "account_id": fmt.Sprint(i % 100), "email": fmt.Sprintf("customer.%d@mail%d.example.com", i, i%7),
			"full_name": fmt.Sprintf("Bob Meyer%d", i), "phone": fmt.Sprintf("+49 30 %08d", i), "street": fmt.Sprintf("Hauptstrasse %d", i%200),
			"city": "Berlin", "zip": fmt.Sprintf("%05d", 10000+i%90000), "country": "DE", "birth_date": fmt.Sprintf("19%02d-%02d-%02d", 40+i%60, 1+i%12, 1+i%28),
			"notes": "called about invoice", "profile": fmt.Sprintf(`{"ssn": "123-45-%04d", "address": {"city": "Berlin", "street": "Hauptstrasse %d", "zip": "10115"}, "contacts": [{"email": "alt%d@mail.example", "type": "work"}], "preferences": {"newsletter": true, "language": "de"}}`, i%10000, i%200, i),
			"created_at": ts, "deleted_at": ""}
	case "orders":
		return map[string]string{"id": fmt.Sprint(i), "account_id": fmt.Sprint(i % 100), "customer_id": fmt.Sprint(i / 3), "status": "paid",
			"total": fmt.Sprintf("%d.%02d", 10+i%5000, i%100), "currency": "EUR", "shipping_address": fmt.Sprintf("Hauptstrasse %d, 10115 Berlin, Germany", i%200), "created_at": ts}
	case "payments":
		return map[string]string{"id": fmt.Sprint(i), "order_id": fmt.Sprint(i), "amount": fmt.Sprintf("%d.%02d", 10+i%5000, i%100), "method": "card",
			"card_last4": fmt.Sprintf("%04d", i%10000), "iban": fmt.Sprintf("DE89370400440532%06d", i%1000000), "paid_at": ts}
	case "support_tickets":
		return map[string]string{"id": fmt.Sprint(i), "account_id": fmt.Sprint(i % 100), "customer_id": fmt.Sprint(i / 2), "subject": fmt.Sprintf("Problem with order number %d and delivery", i),
			"body": "Hello, my parcel did not arrive. Please call me back.", "metadata": fmt.Sprintf(`{"ip": "10.%d.%d.%d", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "tags": ["billing", "urgent"], "channel": "email"}`, i%256, (i/256)%256, i%200),
			"status": "open", "created_at": ts}
	case "events":
		return map[string]string{"id": fmt.Sprint(i), "account_id": fmt.Sprint(i % 100), "user_id": fmt.Sprint(i % 5000), "kind": "order.paid", "ip": fmt.Sprintf("192.168.%d.%d", i%256, (i/7)%256),
			"properties":  fmt.Sprintf(`{"order": {"id": %d, "total": %d.%02d, "customer_id": %d, "email": "customer.%d@mail.example.com"}, "payment": {"amount": %d.%02d, "method": "card"}, "source": "web"}`, i, 10+i%5000, i%100, i/3, i, 10+i%5000, i%100),
			"occurred_at": ts}
	}
	return nil
}

// saasPlan compiles examples/saas/pgveil.yaml against saasColumns.
func saasPlan(tb testing.TB) *transform.Plan {
	tb.Helper()
	env := func(name string) (string, bool) {
		switch name {
		case "PGVEIL_SECRET":
			return pgtest.Secret, true
		case "SOURCE_DSN", "TARGET_DSN":
			return "postgres://localhost/x", true
		}
		return "", false
	}
	cfg, err := rules.Load(filepath.Join("..", "examples", "saas", "pgveil.yaml"), env, nil)
	if err != nil {
		tb.Fatal(err)
	}
	cat := schema.Tables{}
	for _, t := range saasColumns {
		tbl := &schema.Table{Schema: "public", Name: t.table}
		for _, c := range t.cols {
			tbl.Columns = append(tbl.Columns, schema.Column{Name: c[0], Type: schema.MustType(c[1]), PrimaryKey: c[0] == "id", Unique: t.table == "users" && c[0] == "email"})
		}
		cat.Add(tbl)
	}
	keys, err := cfg.Keys()
	if err != nil {
		tb.Fatal(err)
	}
	plan, _, err := cfg.Compile(cat, keys, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return plan
}

// saasRows returns n rows of each saas table, in the plan's column order.
func saasRows(plan *transform.Plan, n int) map[*transform.TablePlan][][]schema.Value {
	out := map[*transform.TablePlan][][]schema.Value{}
	for _, tp := range plan.Tables() {
		for i := range n {
			vals := saasRow(tp.Table.Name, i*7919+13)
			row := make([]schema.Value, len(tp.Columns))
			for j, c := range tp.Columns {
				if s := vals[c.Column.Name]; s == "" {
					row[j] = schema.Value{State: schema.Null}
				} else {
					row[j] = schema.Text(s)
				}
			}
			out[tp] = append(out[tp], row)
		}
	}
	return out
}

// BenchmarkPlanSaaS masks one row of each examples/saas table per
// iteration (7 rows), with the saas rules: the snapshot's masking cost.
func BenchmarkPlanSaaS(b *testing.B) {
	plan := saasPlan(b)
	rows := saasRows(plan, 256)
	tables := plan.Tables()
	var dst []schema.Value
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		for _, tp := range tables {
			var err error
			if dst, err = tp.Mask(dst[:0], rows[tp][i%256]); err != nil {
				b.Fatal(err)
			}
		}
		i++
	}
}

// BenchmarkPlanSaaSTable masks rows of each saas table alone.
func BenchmarkPlanSaaSTable(b *testing.B) {
	plan := saasPlan(b)
	rows := saasRows(plan, 256)
	for _, tp := range plan.Tables() {
		b.Run(tp.Table.Name, func(b *testing.B) {
			var dst []schema.Value
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				var err error
				if dst, err = tp.Mask(dst[:0], rows[tp][i%256]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
