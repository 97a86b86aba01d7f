package schema_test

import (
	"testing"

	"pgveil/internal/pgtest"
)

var shared pgtest.Shared

func TestMain(m *testing.M) { pgtest.Main(m, &shared) }
