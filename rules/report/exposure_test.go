package report

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/transform"
)

// exposureRules: orders.total is noised; its row, its children (through
// order_id kept like orders.id), its parent (customer_id hashed like
// customers.id) and json documents keep things it may be compared with.
const exposureRules = `source: {dsn: "postgres://u@prod/app"}
target: {dsn: "postgres://u@analytics/copy"}
secret: ` + pgtest.Secret + `
tables:
  orders:
    columns:
      id: keep
      customer_id: hash
      total: {noise: 0.05}
      subtotal: keep
      status: {fake: word}
      created_at: keep
      meta: {json: {"$.email": {fake: email}}}
  payments:
    columns:
      id: keep
      order_id: keep
      amount: keep
      fee: {noise: 0.1}
      paid_at: {noise: 2h}
      card: {redact: "0000"}
  refunds:
    columns:
      id: keep
      order_id: hash
      amount: keep
  customers:
    columns:
      id: hash
      lifetime_value: keep
      balance: {noise: 0.1}
  events:
    columns:
      id: keep
      properties: {json: {"$..total": drop}}
      payload: {json: {"$.user.email": {fake: email}, "$.total": keep}}
      extra: {json: {"$['order_id']": drop}}
      any: {json: {"$.*": drop}}
  shop.invoices:
    columns:
      id: keep
      orders_id: keep
      net: keep
`

func parseRules(t *testing.T, src string) *rules.Config {
	t.Helper()
	cfg, err := rules.Parse("f.yaml", []byte(src), func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func pairLabel(p Pair) string {
	return p.Noised.String() + " (" + p.NoiseLabel() + ") | " + p.Kept.String() + " (" + p.KeptRule + ") | " + p.Join()
}

func TestCandidates(t *testing.T) {
	var got []string
	for _, p := range Candidates(parseRules(t, exposureRules)) {
		got = append(got, pairLabel(p))
	}
	want := []string{
		// The same row: kept columns and the json key named total.
		"public.orders.total (noise 0.05) | public.orders.subtotal (keep) | same row",
		"public.orders.total (noise 0.05) | public.orders.created_at (keep) | same row",
		"public.orders.total (noise 0.05) | public.orders.meta->'total' (json) | same row",
		// Children through a key column masked like orders.id; refunds'
		// order_id is hashed while orders.id is kept: no join.
		"public.orders.total (noise 0.05) | public.payments.amount (keep) | public.payments.order_id = public.orders.id",
		// Parent through customer_id, hashed like customers.id.
		"public.orders.total (noise 0.05) | public.customers.lifetime_value (keep) | public.orders.customer_id = public.customers.id",
		// A json document holding order_id and total, neither masked
		// ($..total drops total in properties, $['order_id'] and $.*
		// mask the key in extra and any).
		"public.orders.total (noise 0.05) | public.events.payload->'total' (json) | public.events.payload->'order_id' = public.orders.id",
		// <table>_id works as well as <singular>_id.
		"public.orders.total (noise 0.05) | shop.invoices.net (keep) | shop.invoices.orders_id = public.orders.id",
		"public.payments.fee (noise 0.1) | public.payments.amount (keep) | same row",
		// orders has no payment_id column, but its json may hold one.
		"public.payments.fee (noise 0.1) | public.orders.meta->'fee' (json) | public.orders.meta->'payment_id' = public.payments.id",
		"public.payments.fee (noise 0.1) | public.orders.subtotal (keep) | public.payments.order_id = public.orders.id",
		"public.payments.fee (noise 0.1) | public.orders.created_at (keep) | public.payments.order_id = public.orders.id",
		"public.payments.fee (noise 0.1) | public.orders.meta->'fee' (json) | public.payments.order_id = public.orders.id",
		// Only the paths that name a key mask it: $..total and
		// $['order_id'] leave fee and payment_id as they are.
		"public.payments.fee (noise 0.1) | public.events.properties->'fee' (json) | public.events.properties->'payment_id' = public.payments.id",
		"public.payments.fee (noise 0.1) | public.events.payload->'fee' (json) | public.events.payload->'payment_id' = public.payments.id",
		"public.payments.fee (noise 0.1) | public.events.extra->'fee' (json) | public.events.extra->'payment_id' = public.payments.id",
		// A duration noise: no json key (dates in documents are not read).
		"public.payments.paid_at (noise 2h) | public.payments.amount (keep) | same row",
		"public.payments.paid_at (noise 2h) | public.orders.subtotal (keep) | public.payments.order_id = public.orders.id",
		"public.payments.paid_at (noise 2h) | public.orders.created_at (keep) | public.payments.order_id = public.orders.id",
		"public.customers.balance (noise 0.1) | public.customers.lifetime_value (keep) | same row",
		"public.customers.balance (noise 0.1) | public.orders.subtotal (keep) | public.orders.customer_id = public.customers.id",
		"public.customers.balance (noise 0.1) | public.orders.created_at (keep) | public.orders.customer_id = public.customers.id",
		"public.customers.balance (noise 0.1) | public.orders.meta->'balance' (json) | public.orders.customer_id = public.customers.id",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Candidates:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// Without a key both sides mask alike, nothing outside the row is paired.
func TestCandidatesNeedTheSameKeyMasking(t *testing.T) {
	for _, tc := range []struct{ orderID, paymentOrderID string }{
		{"keep", "hash"},
		{"hash", "keep"},
		{"{fake: word}", "{fake: word}"}, // not a key-preserving rule
		{"keep", "drop"},
	} {
		src := `source: {dsn: "postgres://u@prod/app"}
target: {dsn: "postgres://u@analytics/copy"}
secret: ` + pgtest.Secret + `
tables:
  orders:
    columns: {id: ` + tc.orderID + `, total: {noise: 0.05}}
  payments:
    columns: {id: keep, order_id: ` + tc.paymentOrderID + `, amount: keep}
`
		if got := Candidates(parseRules(t, src)); len(got) != 0 {
			t.Errorf("orders.id %s, payments.order_id %s: %d pairs, want none: %s", tc.orderID, tc.paymentOrderID, len(got), pairLabel(got[0]))
		}
	}
	// hash on both sides joins.
	src := `source: {dsn: "postgres://u@prod/app"}
target: {dsn: "postgres://u@analytics/copy"}
secret: ` + pgtest.Secret + `
tables:
  orders:
    columns: {id: hash, total: {noise: 0.05}}
  payments:
    columns: {id: keep, order_id: hash, amount: keep}
`
	if got := Candidates(parseRules(t, src)); len(got) != 1 || pairLabel(got[0]) != "public.orders.total (noise 0.05) | public.payments.amount (keep) | public.payments.order_id = public.orders.id" {
		t.Errorf("hash/hash: %d pairs", len(got))
	}
}

func TestSingular(t *testing.T) {
	for in, want := range map[string]string{"orders": "order", "companies": "company", "addresses": "address", "boxes": "box",
		"matches": "match", "status": "status", "class": "class", "data": "data", "s": "s", "users": "user"} {
		if got := refs.Singular(in); got != want {
			t.Errorf("Singular(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestKeptKey(t *testing.T) {
	rule := func(paths ...string) transform.Rule {
		var prs []transform.PathRule
		for _, p := range paths {
			prs = append(prs, transform.PathRule{Path: p, Rule: transform.Rule{Name: "drop"}})
		}
		return transform.Rule{Name: "json", Args: transform.Args{"paths": prs}}
	}
	for _, tc := range []struct {
		rule transform.Rule
		want bool
	}{
		{rule("$.email"), true},
		{rule("$.totals", "$.sub.totalx"), true},
		{rule("$.total"), false},
		{rule("$..total"), false},
		{rule("$.a.total"), false}, // errs towards masked
		{rule(`$["total"]`), false},
		{rule(`$['total']`), false},
		{rule(`$['to\'tal']`), false}, // an escaped name may be any key
		{rule("$.*"), false},
		{rule("$[*]"), false},
		{rule("$"), false},
		{transform.Rule{Name: "json", Args: transform.Args{"paths": []transform.PathRule{{Path: "$.total", Rule: transform.Rule{Name: "keep"}}}}}, true},
	} {
		if got := keptKey(tc.rule, "total"); got != tc.want {
			t.Errorf("keptKey(%v, total) = %v, want %v", tc.rule.Args["paths"], got, tc.want)
		}
	}
}

func TestComparable(t *testing.T) {
	pairs := Candidates(parseRules(t, exposureRules))
	cat := Catalog{}
	for _, c := range []struct{ table, column, typ string }{
		{"orders", "id", "int8"}, {"orders", "customer_id", "int8"}, {"orders", "total", "numeric"}, {"orders", "subtotal", "numeric"},
		{"orders", "created_at", "timestamptz"}, {"orders", "meta", "jsonb"},
		{"payments", "id", "int8"}, {"payments", "order_id", "int8"}, {"payments", "amount", "int4"}, {"payments", "fee", "float8"},
		{"payments", "paid_at", "timestamp"},
		{"customers", "id", "int8"}, {"customers", "lifetime_value", "text"}, {"customers", "balance", "numeric"},
		{"events", "id", "int8"}, {"events", "payload", "json"},
		// shop.invoices is not in the replica.
	} {
		cat[Ref{Schema: "public", Table: c.table, Column: c.column}] = c.typ
	}
	var got []string
	for _, p := range pairs {
		if Comparable(p, cat) {
			got = append(got, pairLabel(p))
		}
	}
	want := []string{
		"public.orders.total (noise 0.05) | public.orders.subtotal (keep) | same row",
		"public.orders.total (noise 0.05) | public.orders.meta->'total' (json) | same row",
		"public.orders.total (noise 0.05) | public.payments.amount (keep) | public.payments.order_id = public.orders.id",
		"public.orders.total (noise 0.05) | public.events.payload->'total' (json) | public.events.payload->'order_id' = public.orders.id",
		"public.payments.fee (noise 0.1) | public.payments.amount (keep) | same row",
		"public.payments.fee (noise 0.1) | public.orders.meta->'fee' (json) | public.orders.meta->'payment_id' = public.payments.id",
		"public.payments.fee (noise 0.1) | public.orders.subtotal (keep) | public.payments.order_id = public.orders.id",
		"public.payments.fee (noise 0.1) | public.orders.meta->'fee' (json) | public.payments.order_id = public.orders.id",
		// events.properties and events.extra are not in the replica's catalog.
		"public.payments.fee (noise 0.1) | public.events.payload->'fee' (json) | public.events.payload->'payment_id' = public.payments.id",
		"public.payments.paid_at (noise 2h) | public.orders.created_at (keep) | public.payments.order_id = public.orders.id",
		"public.customers.balance (noise 0.1) | public.orders.subtotal (keep) | public.orders.customer_id = public.customers.id",
		"public.customers.balance (noise 0.1) | public.orders.meta->'balance' (json) | public.orders.customer_id = public.customers.id",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Comparable:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

func TestPairSQL(t *testing.T) {
	cat := Catalog{
		{Schema: "public", Table: "orders", Column: "id"}:         "int8",
		{Schema: "public", Table: "orders", Column: "total"}:      "numeric",
		{Schema: "public", Table: "orders", Column: "created_at"}: "date",
		{Schema: "public", Table: "payments", Column: "order_id"}: "int4",
		{Schema: "public", Table: "payments", Column: "amount"}:   "numeric",
		{Schema: "public", Table: "payments", Column: "paid_at"}:  "timestamptz",
		{Schema: "public", Table: "events", Column: "Props"}:      "json",
	}
	ratio := transform.Rule{Name: "noise", Args: transform.Args{"ratio": 0.05}}
	orders := func(c string) Ref { return Ref{Schema: "public", Table: "orders", Column: c} }
	payments := func(c string) Ref { return Ref{Schema: "public", Table: "payments", Column: c} }

	sql, args := pairSQL(Pair{Noised: orders("total"), Noise: ratio, Kept: payments("amount"), KeptRule: "keep", NoisedOn: orders("id"), KeptOn: payments("order_id")}, cat)
	for _, want := range []string{
		`FROM public.orders AS n JOIN public.payments AS k ON k.order_id::text = n.id::text`, // int4 against int8: compared as text
		`k.amount::numeric AS kv, n.total::numeric AS nv, hashtext(n.ctid::text || k.ctid::text) AS h`,
		`count(*) FILTER (WHERE abs(kv - nv) <= $1::numeric * abs(kv) + 0.5 * 10::numeric ^ (-scale(nv)))`,
		`count(*) FILTER (WHERE abs(kv - mv) <= $1::numeric * abs(kv) + 0.5 * 10::numeric ^ (-scale(mv)))`,
		`lead(nv) OVER (ORDER BY h, kv, nv) AS mv`,
		`WHERE kv IS NOT NULL AND nv IS NOT NULL`,
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("ratio pair: the SQL lacks %s:\n%s", want, sql)
		}
	}
	if !slices.Equal(args, []any{"0.05"}) {
		t.Errorf("ratio pair: args %v", args)
	}

	// A json key joined through a json key: both read with parameters.
	events := Ref{Schema: "public", Table: "events", Column: "Props"}
	kept, on := events, events
	kept.Key, on.Key = "total", "order_id"
	sql, args = pairSQL(Pair{Noised: orders("total"), Noise: ratio, Kept: kept, KeptRule: "json", NoisedOn: orders("id"), KeptOn: on}, cat)
	for _, want := range []string{
		`JOIN public.events AS k ON (k."Props" ->> $1::text) = n.id::text`,
		`CASE json_typeof(k."Props" -> $2::text) WHEN 'number' THEN CASE WHEN (k."Props" ->> $2::text) ~ `,
		`WHEN 'string' THEN CASE WHEN (k."Props" ->> $2::text) ~ '^-?[0-9]{1,30}(\.[0-9]{1,30})?$' THEN (k."Props" ->> $2::text)::numeric END END AS kv`,
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("json pair: the SQL lacks %s:\n%s", want, sql)
		}
	}
	if !slices.Equal(args, []any{"order_id", "total", "0.05"}) {
		t.Errorf("json pair: args %v", args)
	}

	// A duration against a date: a day more, in seconds.
	sql, args = pairSQL(Pair{Noised: payments("paid_at"), Noise: transform.Rule{Name: "noise", Args: transform.Args{"duration": 2 * time.Hour}},
		Kept: orders("created_at"), KeptRule: "keep", NoisedOn: payments("order_id"), KeptOn: orders("id")}, cat)
	for _, want := range []string{
		`k.created_at::timestamptz AS kv, n.paid_at::timestamptz AS nv`,
		`abs(extract(epoch FROM kv - nv)) <= $1::numeric`,
		`ON k.id::text = n.order_id::text`,
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("duration pair: the SQL lacks %s:\n%s", want, sql)
		}
	}
	if !slices.Equal(args, []any{"93600.000001"}) {
		t.Errorf("duration pair: args %v", args)
	}

	// The same row: one table, no join.
	sql, _ = pairSQL(Pair{Noised: orders("total"), Noise: ratio, Kept: orders("total"), KeptRule: "keep"}, cat)
	if !strings.Contains(sql, `n.total::numeric AS kv, n.total::numeric AS nv, hashtext(n.ctid::text) AS h FROM public.orders AS n) x`) {
		t.Errorf("same row:\n%s", sql)
	}
}

func TestExposureVerdict(t *testing.T) {
	for _, tc := range []struct {
		e    Exposure
		want Verdict
	}{
		{Exposure{Rows: 1236, Within: 1160, Chance: 12}, Exposed},
		{Exposure{Rows: 20, Within: 16, Chance: 8}, Exposed},             // exactly 80%, exactly twice chance
		{Exposure{Rows: 20, Within: 15, Chance: 0}, NotShown},            // 75%
		{Exposure{Rows: 100, Within: 90, Chance: 46}, Undecided},         // chance is more than half
		{Exposure{Rows: 19, Within: 19, Chance: 0}, FewRows},             // too few to tell
		{Exposure{Rows: 0}, FewRows},                                     // nothing joined
		{Exposure{Rows: 100, Within: 100, Err: errors.New("x")}, Failed}, // an error wins
	} {
		if got := tc.e.Verdict(); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.e, got, tc.want)
		}
	}
}

func TestNoiseLabel(t *testing.T) {
	for _, tc := range []struct {
		args transform.Args
		want string
	}{
		{transform.Args{"ratio": 0.05}, "noise 0.05"},
		{transform.Args{"ratio": int64(2)}, "noise 2"},
		{transform.Args{"duration": 2 * time.Hour}, "noise 2h"},
		{transform.Args{"duration": 30 * 24 * time.Hour}, "noise 30d"},
		{transform.Args{"duration": 90 * time.Minute}, "noise 90m"},
		{transform.Args{"duration": 1500 * time.Millisecond}, "noise 1.5s"},
	} {
		if got := (Pair{Noise: transform.Rule{Name: "noise", Args: tc.args}}).NoiseLabel(); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.args, got, tc.want)
		}
	}
}
