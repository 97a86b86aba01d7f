package scan

import (
	"slices"
	"strings"
	"testing"

	"pgveil/rules"
	"pgveil/rules/refs"
)

func TestTriggerDerived(t *testing.T) {
	cols := []string{"film_id", "title", "description", "fulltext", "search_name", "first_name", "last_name", "Mixed"}
	for _, tt := range []struct {
		name, fn, schema, src, args string
		want                        map[string][]string
	}{
		{"tsvector_update_trigger", "tsvector_update_trigger", "pg_catalog", "", "fulltext\x00pg_catalog.english\x00title\x00description\x00", map[string][]string{"fulltext": {"title", "description"}}},
		{"plpgsql assignment", "f", "public", `BEGIN
  NEW.search_name := lower(NEW.first_name || ' ' || NEW.last_name);
  IF NEW.title = OLD.title THEN RETURN NEW; END IF;
  RETURN NEW;
END`, "", map[string][]string{"search_name": {"first_name", "last_name", "title"}}},
		{"quoted target", "f", "public", `begin new."Mixed" = upper(new.title); return new; end`, "", map[string][]string{"Mixed": {"title"}}},
		{"comparison only", "f", "public", `BEGIN IF NEW.title = 'x' THEN RAISE EXCEPTION 'no'; END IF; RETURN NEW; END`, "", map[string][]string{}},
		{"not a column", "f", "public", `BEGIN NEW.other := NEW.title; RETURN NEW; END`, "", map[string][]string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string][]string{}
			for _, d := range triggerDerived(tt.fn, tt.schema, tt.src, []byte(tt.args), cols) {
				got[d.Column.Name] = d.Inputs
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if !slices.Equal(got[k], v) {
					t.Errorf("%s: inputs %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestCheckDerived(t *testing.T) {
	yaml := `source: {dsn: "${SOURCE_DSN}"}
target: {dsn: "${TARGET_DSN}"}
secret: ${PGVEIL_SECRET}
tables:
  film:
    columns:
      film_id: hash
      title: drop
      description: keep
      fulltext: keep
  actor:
    columns:
      name: keep
      search: keep
`
	cfg, err := rules.Parse("r.yaml", []byte(yaml), lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	film := refs.Column{Table: refs.Table("public", "film"), Name: "fulltext"}
	actor := refs.Column{Table: refs.Table("public", "actor"), Name: "search"}
	probs := CheckDerived(cfg, []Derived{
		{Column: film, Inputs: []string{"title", "description"}, How: "tsvector trigger"},
		{Column: actor, Inputs: []string{"name"}, How: "generated column"},
	})
	if len(probs) != 1 {
		t.Fatalf("problems: %v, want one for film.fulltext", probs)
	}
	p := probs[0]
	if !p.Warning || p.Table != "public.film" || p.Column != "fulltext" || p.Line != 10 ||
		!strings.Contains(p.Msg, `title (drop, line 8)`) || strings.Contains(p.Msg, "description") {
		t.Errorf("problem: %+v (%s)", p, p.String())
	}
	// Dropping the derived column (or keeping its inputs) silences it.
	cfg.Tables[0].Columns[3].Rule.Name = "drop"
	if probs := CheckDerived(cfg, []Derived{{Column: film, Inputs: []string{"title"}}}); len(probs) != 0 {
		t.Errorf("a dropped derived column warned: %v", probs)
	}
}
