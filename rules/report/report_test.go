package report

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/internal/pgtest"
	"pgveil/rules"
	"pgveil/transform"
)

const testRules = `source: {dsn: "postgres://u@prod/app"}
target: {dsn: "postgres://u@analytics/copy"}
secret: ` + pgtest.Secret + `
tables:
  patients:
    columns:
      id: hash
      first_name: {fake: first_name}
      sex: keep
      birth_date: {truncate: year}
      postal_code: {truncate: 2}
      city: keep
      country: {redact: "XX"}
      nationality: null
      language: {fake: city}
      occupation: drop
      age: {noise: 0.1}
      phone_zip: {partial: {keep_last: 2}}
      created_at: keep
  clinic.visits:
    columns:
      id: keep
      patient_id: hash
      notes: drop
  '"Odd"."Names"':
    columns:
      '"Zip"': keep
      city_id: keep
`

func loadRules(t *testing.T) *rules.Config {
	t.Helper()
	cfg, err := rules.Parse("f.yaml", []byte(testRules), func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestAnalyze(t *testing.T) {
	tables := Analyze(loadRules(t))
	if len(tables) != 3 {
		t.Fatalf("%d tables, want 3", len(tables))
	}
	tests := []struct {
		name    string
		keptRaw []string
		quasi   []Quasi
	}{
		{`public.patients`, []string{"sex", "city", "created_at"}, []Quasi{
			{"sex", "gender", "keep"},
			{"birth_date", "birth_date", "truncate"},
			{"postal_code", "postal_code", "truncate"},
			{"city", "city", "keep"},
			{"age", "age", "noise"},
			{"phone_zip", "postal_code", "partial"},
		}},
		{`clinic.visits`, []string{"id"}, nil},
		{`"Odd"."Names"`, []string{"Zip", "city_id"}, []Quasi{{"Zip", "postal_code", "keep"}}},
	}
	for i, tc := range tests {
		got := tables[i]
		if got.QualifiedName() != tc.name || !slices.Equal(got.KeptRaw, tc.keptRaw) || !slices.Equal(got.Quasi, tc.quasi) {
			t.Errorf("table %d: got %s kept %v quasi %v\nwant %s kept %v quasi %v", i, got.QualifiedName(), got.KeptRaw, got.Quasi, tc.name, tc.keptRaw, tc.quasi)
		}
	}
}

func TestLeavesMeaning(t *testing.T) {
	for name, want := range map[string]bool{
		"keep": true, "truncate": true, "partial": true, "noise": true, "json": true, "custom": true,
		"hash": false, "fake": false, "null": false, "redact": false, "drop": false,
	} {
		if got := LeavesMeaning(transform.Rule{Name: name}); got != want {
			t.Errorf("LeavesMeaning(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestDefaultSet(t *testing.T) {
	tables := Analyze(loadRules(t))
	s, ok := DefaultSet(tables[0])
	want := []string{"sex", "birth_date", "postal_code", "city", "age", "phone_zip"}
	if !ok || !s.Default || s.Schema != "public" || s.Table != "patients" || !slices.Equal(s.Columns, want) {
		t.Errorf("patients: %+v, %v; want the columns %v", s, ok, want)
	}
	if s, ok := DefaultSet(tables[1]); ok {
		t.Errorf("visits has no quasi-identifier but a default set %+v", s)
	}
}

func TestNewSet(t *testing.T) {
	cfg := loadRules(t)
	patients, visits := cfg.Tables[0], cfg.Tables[1]
	tests := []struct {
		tr      *rules.TableRule
		columns []string
		err     string // "" for no error; else every line must be in the error
	}{
		{patients, []string{"birth_date", "city"}, ""},
		{patients, []string{"first_name"}, ""},  // faked: still in the replica, may be measured
		{patients, []string{"nationality"}, ""}, // null: one group, but in the replica
		{visits, []string{"id"}, ""},
		{patients, nil, "public.patients: no column given"},
		{patients, []string{"zipcode"}, `public.patients has no column zipcode in the rules (columns: id, first_name, sex, birth_date, postal_code, city, country, nationality, language, age, phone_zip, created_at)`},
		{patients, []string{"occupation", "city"}, "public.patients: column occupation is dropped by the rules: not in the replica"},
		{patients, []string{"city", "city"}, "public.patients: column city given twice"},
		{visits, []string{"notes", "bogus", "other"}, "clinic.visits has no column bogus, other in the rules (columns: id, patient_id); clinic.visits: column notes is dropped"},
		{cfg.Tables[2], []string{"zip"}, `"Odd"."Names" has no column zip in the rules (columns: "Zip", city_id)`},
	}
	for _, tc := range tests {
		s, err := NewSet(tc.tr, tc.columns)
		if tc.err == "" {
			if err != nil || s.Default || s.Table != tc.tr.Name || !slices.Equal(s.Columns, tc.columns) {
				t.Errorf("%s %v: %+v, %v", tc.tr.Name, tc.columns, s, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s %v: no error, want %q", tc.tr.Name, tc.columns, tc.err)
			continue
		}
		for _, line := range strings.Split(tc.err, "\n") {
			if !strings.Contains(err.Error(), line) {
				t.Errorf("%s %v: error %q lacks %q", tc.tr.Name, tc.columns, err, line)
			}
		}
	}
}

func TestSets(t *testing.T) {
	cfg := loadRules(t)
	tables := Analyze(cfg)
	set := func(tr *rules.TableRule, cols ...string) Set {
		s, err := NewSet(tr, cols)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	patients, visits, odd := cfg.Tables[0], cfg.Tables[1], cfg.Tables[2]
	names := func(sets []Set) string {
		var b []string
		for _, s := range sets {
			d := ""
			if s.Default {
				d = "*"
			}
			b = append(b, s.Table+"="+strings.Join(s.Columns, ",")+d)
		}
		return strings.Join(b, " ")
	}
	tests := []struct {
		asked []Set
		want  string // table=columns, * for a default set
	}{
		{nil, "patients=sex,birth_date,postal_code,city,age,phone_zip* Names=Zip*"},
		// Asked sets replace a table's default, in table order then the
		// order given; the same columns in another order are one set.
		{[]Set{set(odd, "city_id"), set(patients, "city", "sex"), set(patients, "sex", "city"), set(patients, "age")},
			"patients=city,sex patients=age Names=city_id"},
		// A table without quasi-identifiers is measured when asked.
		{[]Set{set(visits, "id")}, "patients=sex,birth_date,postal_code,city,age,phone_zip* visits=id Names=Zip*"},
		// Skip leaves a table's default out; another set asked wins.
		{[]Set{Skip(patients)}, "Names=Zip*"},
		{[]Set{Skip(patients), set(patients, "age")}, "patients=age Names=Zip*"},
	}
	for _, tc := range tests {
		if got := names(Sets(tables, tc.asked)); got != tc.want {
			t.Errorf("Sets(%s):\n got %s\nwant %s", names(tc.asked), got, tc.want)
		}
	}
}

func TestGroupSQL(t *testing.T) {
	got := groupSQL(Set{Schema: "public", Table: `Pa"tients`, Columns: []string{"birth_date", "Zip"}})
	for _, want := range []string{
		`FROM (SELECT count(*) AS n FROM public."Pa""tients" GROUP BY birth_date::text, "Zip"::text) g`,
		`count(*) FILTER (WHERE n < $1)`,
		`coalesce(min(n), 0)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("groupSQL lacks %q:\n%s", want, got)
		}
	}
}

func TestTimeoutMillis(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0", time.Microsecond: "1", time.Millisecond: "1", 5 * time.Minute: "300000", 1500 * time.Microsecond: "2"} {
		if got := timeoutMillis(d); got != want {
			t.Errorf("timeoutMillis(%s) = %s, want %s", d, got, want)
		}
	}
}

// Server errors keep the SQLSTATE and the table, and their message only
// for classes that never quote a value.
func TestSanitize(t *testing.T) {
	const canary = "CANARY-value-1984"
	tests := []struct {
		err  error
		want string
	}{
		{&pgconn.PgError{Code: "22P02", Message: `invalid input syntax for type integer: "` + canary + `"`, Detail: canary},
			"public.t: server error (SQLSTATE 22P02)"},
		{&pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout", Where: canary},
			"public.t: the query was canceled: it ran longer than the statement timeout (--timeout) (SQLSTATE 57014)"},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "42703", Message: `column "zip" does not exist`, Hint: canary}),
			`public.t: a column of the set is not in the replica: column "zip" does not exist (SQLSTATE 42703)`},
		{&pgconn.PgError{Code: "53100", Message: "could not write " + canary},
			"public.t: the server ran out of resources (memory or disk for grouping) (SQLSTATE 53100)"},
		{errors.New("conn closed"), "public.t: conn closed"},
	}
	for _, tc := range tests {
		got := sanitize(tc.err, "public.t")
		if got.Error() != tc.want {
			t.Errorf("sanitize(%v):\n got %s\nwant %s", tc.err, got, tc.want)
		}
		if strings.Contains(got.Error(), canary) {
			t.Errorf("sanitize(%v) keeps the value: %s", tc.err, got)
		}
	}
	var qe *QueryError
	if !errors.As(sanitize(&pgconn.PgError{Code: "42P01"}, "public.t"), &qe) || qe.SQLState() != "42P01" || qe.Table != "public.t" {
		t.Errorf("not a *QueryError with the code and table: %+v", qe)
	}
	if err := errors.New("x"); sanitize(err, "") != err {
		t.Error("an error without a table is not returned as it is")
	}
}

func TestMeasurementVerdicts(t *testing.T) {
	tests := []struct {
		m            Measurement
		empty, below bool
	}{
		{Measurement{Rows: 10, Groups: 2, K: 5}, false, false},
		{Measurement{Rows: 10, Groups: 3, K: 1}, false, true},
		{Measurement{Rows: 10, Groups: 3, K: 4}, false, true},
		{Measurement{}, true, false},
		{Measurement{Err: errors.New("x")}, false, false},
	}
	for _, tc := range tests {
		if tc.m.Empty() != tc.empty || tc.m.Below(5) != tc.below {
			t.Errorf("%+v: empty %v, below 5 %v; want %v, %v", tc.m, tc.m.Empty(), tc.m.Below(5), tc.empty, tc.below)
		}
	}
}

func TestWithinTenants(t *testing.T) {
	src := strings.Replace(testRules, "tables:\n", "tenancy: {column: patient_id}\ntables:\n", 1)
	src = strings.Replace(src, "  patients:\n    columns:\n", "  patients:\n    tenant: {column: id}\n    columns:\n", 1)
	cfg, err := rules.Parse("f.yaml", []byte(src), func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	sets := []Set{
		{Schema: "public", Table: "patients", Columns: []string{"sex", "city"}, Default: true},
		{Schema: "public", Table: "patients", Columns: []string{"id", "sex"}}, // holds the tenant column: no per-tenant copy
		{Schema: "clinic", Table: "visits", Columns: []string{"id"}},
		{Schema: "Odd", Table: "Names", Columns: []string{"Zip"}}, // no tenant column
	}
	got := WithinTenants(cfg, sets)
	var labels []string
	for _, s := range got {
		labels = append(labels, s.Table+":"+strings.Join(s.Columns, ",")+"/"+s.Within+fmt.Sprint(s.Default))
	}
	want := []string{"patients:sex,city/true", "patients:sex,city/idtrue", "patients:id,sex/false", "visits:id/false", "visits:id/patient_idfalse", "Names:Zip/false"}
	if !slices.Equal(labels, want) {
		t.Errorf("WithinTenants:\n got %v\nwant %v", labels, want)
	}
	if got := WithinTenants(loadRules(t), sets); len(got) != len(sets) {
		t.Errorf("without tenancy: %d sets, want %d", len(got), len(sets))
	}
	if sql := groupSQL(got[1]); !strings.Contains(sql, `GROUP BY id::text, sex::text, city::text`) {
		t.Errorf("groupSQL within tenants: %s", sql)
	}
}
