package main

import (
	"strings"
	"testing"
)

// TestValidateWarnsDerived: online validate warns when a derived column
// (a tsvector a trigger builds) is kept while a column it is built from is
// dropped, naming both lines; the file is still valid.
func TestValidateWarnsDerived(t *testing.T) {
	s := newSite(t)
	s.exec(`CREATE TABLE articles (id int PRIMARY KEY, title text, body text, search tsvector);
CREATE TRIGGER articles_search BEFORE INSERT OR UPDATE ON articles
  FOR EACH ROW EXECUTE FUNCTION tsvector_update_trigger(search, 'pg_catalog.english', title, body)`)
	cfg := s.rulesWith("\n  articles:\n    columns:\n      id: hash\n      title: drop\n      body: keep\n      search: keep\n")
	code, out, errOut := s.cli("validate", "-c", cfg)
	t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
	want := cfg + ":" + itoa(lineOf(t, cfg, "      search: keep")) + ":15: public.articles.search: warning: kept, but it is a tsvector trigger built from title (drop, line " +
		itoa(lineOf(t, cfg, "      title: drop")) + ")"
	if code != exitOK || !strings.Contains(errOut, want) || strings.Contains(errOut, "body (") {
		t.Errorf("exit %d, stderr lacks %q", code, want)
	}
	// Dropping the tsvector silences the warning.
	cfg = s.rulesWith("\n  articles:\n    columns:\n      id: hash\n      title: drop\n      body: keep\n      search: drop\n")
	if code, _, errOut := s.cli("validate", "-c", cfg); code != exitOK || strings.Contains(errOut, "articles.search") {
		t.Errorf("search dropped: exit %d, stderr:\n%s", code, errOut)
	}
}
