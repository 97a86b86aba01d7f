package schema_test

import (
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

var shared pgtest.Shared

func TestMain(m *testing.M) { pgtest.Main(m, &shared) }

// tn parses "schema.name" (no quoting) into a table name.
func tn(s string) schema.TableName {
	schemaName, name, _ := strings.Cut(s, ".")
	return schema.TableName{Schema: schemaName, Name: name}
}
