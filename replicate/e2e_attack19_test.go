package replicate

import (
	"testing"
)

// A type's name is written schema-qualified (catalog.go), and in a type
// name the schema may not be a bare keyword of PostgreSQL's "column name"
// category (values, time, char, ...): "values.mood" is a syntax error where
// "values".mood is a type. Production's schema names are not pgveil's to
// choose, so an enum there must replicate like any other.
func TestReplicateEnumInKeywordSchema(t *testing.T) {
	e := newE2E(t, `
CREATE SCHEMA "values";
CREATE TYPE "values".mood AS ENUM ('sad', 'happy');
CREATE TABLE feelings (id int PRIMARY KEY, m "values".mood);
INSERT INTO feelings VALUES (1, 'sad');`,
		"  feelings:\n    columns: {id: keep, m: keep}\n")
	e.start()
	e.sync()
	e.exec(`INSERT INTO feelings VALUES (2, 'happy')`)
	e.sync()
	if got := e.replicaStrings(`SELECT m::text FROM public.feelings ORDER BY id`); len(got) != 2 || got[0] != "sad" || got[1] != "happy" {
		t.Errorf("replica: %q, want [sad happy]", got)
	}
}
