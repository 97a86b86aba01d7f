package rules

import (
	"bufio"
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"pgveil/transform"
)

func testFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in testdata/%s: %v", dir, err)
	}
	return files
}

func TestGoodFiles(t *testing.T) {
	for _, f := range testFiles(t, "good") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f, testEnv(), testRegistry())
			if err != nil {
				t.Fatalf("problems:\n%v", err)
			}
			if len(cfg.Tables) == 0 {
				t.Errorf("no tables")
			}
			for _, tr := range cfg.Tables {
				if len(tr.Columns) == 0 || tr.Line == 0 || tr.Col == 0 {
					t.Errorf("table %s.%s: %d columns at %d:%d", tr.Schema, tr.Name, len(tr.Columns), tr.Line, tr.Col)
				}
				for _, c := range tr.Columns {
					if c.Line == 0 || c.Rule.Line == 0 || c.Rule.Name == "" {
						t.Errorf("column %s: %+v", c.Name, c)
					}
				}
			}
		})
	}
}

// TestDesignExampleBuiltin parses the design's example rules file
// (testdata/good/design.yaml) with the real transformers, once their
// specs have parameters.
func TestDesignExampleBuiltin(t *testing.T) {
	reg := transform.Builtin()
	for _, name := range []string{"fake", "partial", "truncate", "json", "noise"} {
		if s := reg.Spec(name); s == nil || len(s.Params) == 0 {
			t.Skipf("transformer %s is not written yet", name)
		}
	}
	if _, err := Load(filepath.Join("testdata", "good", "design.yaml"), testEnv(), reg); err != nil {
		t.Fatalf("problems:\n%v", err)
	}
}

// TestBadFiles checks that each bad file gives exactly the problems its
// leading "# error: LINE:COL: substring" comments list.
func TestBadFiles(t *testing.T) {
	for _, f := range testFiles(t, "bad") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f, testEnv(), testRegistry())
			if cfg != nil {
				t.Errorf("a config despite errors")
			}
			ps := problemsOf(t, err)
			for _, p := range ps {
				if p.File != f {
					t.Errorf("problem names file %q, want %q", p.File, f)
				}
			}
			checkProblems(t, ps, expectedProblems(t, f))
		})
	}
}

func expectedProblems(t *testing.T, file string) []want {
	t.Helper()
	data := readFile(t, file)
	var wants []want
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "# error: ")
		if !ok {
			break
		}
		wants = append(wants, want(line))
	}
	if len(wants) == 0 {
		t.Fatalf("%s does not start with # error: lines", file)
	}
	return wants
}
