package refs

import (
	"strconv"
	"strings"
	"testing"

	"pgveil/rules"
)

// checkRules is a Pagila-shaped rules file; line numbers matter to the
// tests below (lineOf finds them).
const checkRules = `source: {dsn: "postgres://pgveil@prod.internal/pagila"}
target: {dsn: "host=analytics dbname=copy"}
secret: "correct horse battery staple, and then some"
tables:
  customer:
    columns:
      customer_id: hash
      name: {redact: "x"}
  staff:
    columns:
      staff_id: hash
      picture: drop
  store:
    columns:
      store_id: keep
      manager_staff_id: keep
  payment:
    columns:
      payment_id: keep
      customer_id: hash
      staff_id: hash
      rental_id: keep
  rental:
    columns:
      rental_id: hash
      customer_id: hash
`

func parseRules(t *testing.T, text string) *rules.Config {
	t.Helper()
	cfg, err := rules.Parse("r.yaml", []byte(text), func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatalf("rules:\n%v", err)
	}
	return cfg
}

// pos is "r.yaml:LINE:COL" of the first occurrence of s in text.
func pos(text, s string) string {
	i := strings.Index(text, s)
	if i < 0 {
		return "r.yaml:?:?"
	}
	line := 1 + strings.Count(text[:i], "\n")
	col := i - strings.LastIndex(text[:i], "\n")
	return "r.yaml:" + strconv.Itoa(line) + ":" + strconv.Itoa(col)
}

// under returns text with the line holding old (under table's block)
// replaced by new.
func under(text, table, old, new string) string {
	i := strings.Index(text, "  "+table+":\n")
	j := i + strings.Index(text[i:], old)
	return text[:j] + new + text[j+len(old):]
}

func ref(from, to string, o Origin) Ref {
	f := strings.SplitN(from, ".", 2)
	k := strings.SplitN(to, ".", 2)
	return Ref{From: col(f[0], f[1]), To: col(k[0], k[1]), Origin: o, Constraint: "fk_" + strings.ReplaceAll(from, ".", "_")}
}

func TestCheck(t *testing.T) {
	partitionFK := ref("payment.customer_id", "customer.customer_id", Partition)
	inferred := ref("store.manager_staff_id", "staff.staff_id", Inferred)
	inferred.Constraint, inferred.Why, inferred.Overlap = "", "suffix _staff_id names the key public.staff.staff_id; 100% of 2 sampled values found in the key", 1
	for _, tc := range []struct {
		name  string
		rules string
		refs  []Ref
		want  []string // substrings of each problem, in order; nil: none
	}{
		{"consistent", checkRules, []Ref{
			partitionFK, ref("payment.staff_id", "staff.staff_id", Partition), ref("rental.customer_id", "customer.customer_id", Declared),
		}, nil},
		{"kept id beside a hashed key", under(checkRules, "payment", "customer_id: hash", "customer_id: keep"), []Ref{partitionFK}, []string{
			pos(checkRules, "customer_id: hash\n      staff_id") + ": public.payment.customer_id: masked with keep, but it references public.customer.customer_id (foreign key fk_payment_customer_id on the partitions), masked with hash at " +
				pos(checkRules, "customer_id: hash") + ": joins from public.payment to public.customer find no rows on the replica, and the raw values here undo the key's mask. Use hash here; or, if the difference is deliberate, write references: {customer_id: none} under public.payment",
		}},
		{"none accepts the difference", under(under(checkRules, "payment", "customer_id: hash", "customer_id: keep"), "payment", "    columns:", "    references: {customer_id: none}\n    columns:"),
			[]Ref{partitionFK}, nil},
		{"inferred, kept", checkRules, []Ref{inferred}, []string{
			"public.store.manager_staff_id: masked with keep, but it references public.staff.staff_id (inferred: suffix _staff_id names the key public.staff.staff_id; 100% of 2 sampled values found in the key), masked with hash at " + pos(checkRules, "staff_id: hash"),
		}},
		{"referencing column dropped", under(checkRules, "store", "manager_staff_id: keep", "manager_staff_id: drop"), []Ref{inferred}, nil},
		{"referencing column null", under(checkRules, "store", "manager_staff_id: keep", "manager_staff_id: null"), []Ref{inferred}, nil},
		{"key dropped, raw id kept", under(under(checkRules, "staff", "staff_id: hash", "staff_id: drop"), "payment", "staff_id: hash", "staff_id: drop"), []Ref{inferred, ref("payment.staff_id", "staff.staff_id", Partition)}, []string{
			"public.store.manager_staff_id: masked with keep, but the key it references, public.staff.staff_id (inferred: ", "), is drop at " + pos(checkRules, "staff_id: hash") + ": a raw id whose key is gone still identifies. Drop this column too",
		}},
		{"key dropped, id hashed", under(checkRules, "staff", "staff_id: hash", "staff_id: drop"), []Ref{ref("payment.staff_id", "staff.staff_id", Declared)}, []string{
			"public.payment.staff_id: masked with hash, but the key it references, public.staff.staff_id (foreign key fk_payment_staff_id), is drop at",
		}},
		{"referencing table not replicated", checkRules, []Ref{ref("inventory.store_id", "store.store_id", Declared)}, nil},
		{"key table not replicated", checkRules, []Ref{ref("rental.inventory_id", "inventory.inventory_id", Declared), ref("payment.rental_id", "film.film_id", Inferred)}, nil},
		{"unruled column", checkRules, []Ref{ref("payment.amount", "customer.customer_id", Inferred)}, nil},
		{"same transformer, other parameters", under(under(checkRules, "staff", "picture: drop", `picture: {redact: "y"}`), "customer", "    columns:", "    references: {name: staff.picture}\n    columns:"), nil, []string{
			`r.yaml:9:7: public.customer.name: masked with {redact: ...}, but it references public.staff.picture (declared in the rules at r.yaml:6:18), masked with {redact: ...} at r.yaml:13:7: joins from public.customer to public.staff find no rows on the replica. Use the key's rule (redact with the same parameters, copied from r.yaml:13:7) here; or`,
		}},
		{"same transformer, same parameters", under(under(checkRules, "staff", "picture: drop", `picture: {redact: "x"}`), "customer", "    columns:", "    references: {name: staff.picture}\n    columns:"), nil, nil},
		{"every pair at once, sorted", under(under(checkRules, "payment", "staff_id: hash", "staff_id: keep"), "rental", "customer_id: hash", "customer_id: keep"), []Ref{
			ref("rental.customer_id", "customer.customer_id", Declared), inferred, ref("payment.staff_id", "staff.staff_id", Partition),
		}, []string{
			"public.store.manager_staff_id: masked with keep", "public.payment.staff_id: masked with keep", "public.rental.customer_id: masked with keep",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parseRules(t, tc.rules)
			m := &Model{}
			for _, r := range tc.refs {
				m.Add(r)
			}
			ps := Check(cfg, m)
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
				if p.Kind != KindReference || p.Warning {
					t.Errorf("kind %q, warning %v", p.Kind, p.Warning)
				}
			}
			all := strings.Join(got, "\n")
			if tc.want == nil {
				if len(ps) != 0 {
					t.Fatalf("want no problem, got:\n%s", all)
				}
				return
			}
			// Each want is a substring of the next problem, or of the same
			// one when several are about one problem (key dropped).
			i := 0
			for _, w := range tc.want {
				for i < len(got) && !strings.Contains(got[i], w) {
					i++
				}
				if i == len(got) {
					t.Fatalf("problems lack %q in order:\n%s", w, all)
				}
			}
			t.Log(all)
		})
	}
}

func TestCheckOneProblemPerPair(t *testing.T) {
	cfg := parseRules(t, under(checkRules, "payment", "customer_id: hash", "customer_id: keep"))
	m := &Model{}
	m.Add(ref("payment.customer_id", "customer.customer_id", Partition))
	m.Add(ref("payment.customer_id", "customer.customer_id", Inferred))
	if ps := Check(cfg, m); len(ps) != 1 {
		t.Fatalf("got %d problems, want 1:\n%v", len(ps), ps)
	}
}

func TestWithRules(t *testing.T) {
	text := under(under(checkRules, "store", "    columns:", "    references:\n      manager_staff_id: public.staff.staff_id\n      store_id: none\n    columns:"),
		"payment", "    columns:", "    references: {rental_id: rental.rental_id}\n    columns:")
	cfg := parseRules(t, text)
	m := &Model{}
	m.Add(ref("store.store_id", "customer.customer_id", Declared))       // none removes even a foreign key
	m.Add(ref("payment.rental_id", "customer.customer_id", Inferred))    // the rules say what rental_id refers to
	m.Add(ref("payment.customer_id", "customer.customer_id", Partition)) // untouched
	got := m.WithRules(cfg)
	want := []string{
		"public.payment.customer_id->public.customer.customer_id foreign key on partitions",
		"public.payment.rental_id->public.rental.rental_id declared in the rules",
		"public.store.manager_staff_id->public.staff.staff_id declared in the rules",
	}
	var have []string
	for _, r := range got.Refs {
		have = append(have, r.From.String()+"->"+r.To.String()+" "+r.Origin.String())
	}
	if strings.Join(have, "\n") != strings.Join(want, "\n") {
		t.Fatalf("WithRules:\n%s\nwant:\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
	if len(m.Refs) != 3 || m.Refs[2].From.Name != "store_id" {
		t.Errorf("WithRules changed its receiver: %+v", m.Refs)
	}
	if again := got.WithRules(cfg); len(again.Refs) != len(got.Refs) {
		t.Errorf("WithRules is not idempotent: %d refs, then %d", len(got.Refs), len(again.Refs))
	}
}
