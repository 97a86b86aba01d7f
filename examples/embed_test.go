package examples

import (
	"os"
	"testing"
)

func TestEmbeddedFilesAreTheExamples(t *testing.T) {
	for name, got := range map[string]string{"saas/schema.sql": SaaSSchema(), "saas/pgveil.yaml": SaaSRules()} {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) || len(got) == 0 {
			t.Errorf("%s: embedded copy differs", name)
		}
	}
}
