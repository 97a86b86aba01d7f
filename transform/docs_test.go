package transform

import (
	"os"
	"strings"
	"testing"
)

// docs/rules.md documents every transformer, each of its parameters and
// every fake kind: adding one without documenting it fails here.
func TestReferenceDocumentsRegistry(t *testing.T) {
	data, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	r := Builtin()
	for _, name := range r.Names() {
		start := strings.Index(doc, "\n## "+name+"\n")
		if start < 0 {
			t.Errorf("docs/rules.md has no section \"## %s\"", name)
			continue
		}
		section := doc[start+4:]
		if end := strings.Index(section, "\n## "); end >= 0 {
			section = section[:end]
		}
		s := r.Spec(name)
		if s.Doc == "" {
			t.Errorf("%s has no Doc", name)
		}
		for _, p := range s.Params {
			if s.Inline {
				continue
			}
			if !strings.Contains(section, "`"+p.Name+"`") {
				t.Errorf("section %s does not document parameter %s", name, p.Name)
			}
			if p.Doc == "" {
				t.Errorf("%s.%s has no Doc", name, p.Name)
			}
		}
		if name == "fake" {
			for _, kind := range fakeKindNames() {
				if !strings.Contains(section, "| `"+kind+"` |") {
					t.Errorf("fake kind %s is not in the table of kinds", kind)
				}
			}
		}
	}
}
