package replicate

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// Shapes of data and schema that break replication tools, through the
// snapshot and the stream: composite types, generated columns, a
// partitioned table, non-ASCII and reserved identifiers, a table without
// a key (REPLICA IDENTITY FULL), large values (kept and masked), deep
// JSON, and NULL in every column. Generated columns are not published by
// PostgreSQL: a rule naming one is refused (rules.TestCompileProblems).
const poisonSchema = `
CREATE TYPE money_amount AS (currency char(3), cents bigint);
CREATE SCHEMA "Ünïcode";
CREATE TABLE "Ünïcode"."Tâble 表" (
  "id" int PRIMARY KEY,
  "naïve column" text,
  "order" text,
  "user" text,
  price money_amount,
  prices money_amount[],
  net numeric,
  gross numeric GENERATED ALWAYS AS (net * 1.2) STORED,
  big text,
  big_secret text,
  doc jsonb
);
CREATE TABLE measurements (id bigint, at date NOT NULL, reading double precision, note text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE measurements_2023 PARTITION OF measurements FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE keyless (a int, b text, c jsonb);
ALTER TABLE keyless REPLICA IDENTITY FULL;
`

const poisonRules = `  '"Ünïcode"."Tâble 表"':
    columns:
      '"id"': hash
      '"naïve column"': {fake: name}
      '"order"': keep
      '"user"': {partial: {keep_last: 1}}
      price: keep
      prices: keep
      net: {noise: 0.1}
      big: keep
      big_secret: hash
      doc: {json: {"$..secret": drop, "$..name": {fake: name}}}
  measurements:
    columns: {id: hash, at: keep, reading: keep, note: drop}
  keyless:
    columns: {a: keep, b: {fake: city}, c: keep}
`

// deepJSON is a document nested depth levels deep, with a secret and a
// name at the bottom.
func deepJSON(depth int) string {
	return strings.Repeat(`{"k": `, depth) + `{"secret": "s", "name": "Ann"}` + strings.Repeat("}", depth)
}

func TestReplicatePoisonValues(t *testing.T) {
	const bigSize = 100 << 20 // toasted, and larger than every buffer on the way
	e := newE2E(t, poisonSchema, poisonRules)
	rows := func(first int) string {
		return fmt.Sprintf(`
INSERT INTO "Ünïcode"."Tâble 表" ("id", "naïve column", "order", "user", price, prices, net, big, big_secret, doc) VALUES
 (%[1]d, 'Zoë 🙂', 'desc', 'ürsula', ('EUR', 1999), ARRAY[('USD', 1)::money_amount, NULL, ('', NULL)::money_amount], 10.5,
  repeat('b', %[2]d), repeat('s', %[2]d), '%[3]s'),
 (%[1]d + 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (%[1]d + 2, '', '', '', ('', 0), '{}', 'NaN', '', '', '{}');
INSERT INTO measurements VALUES (%[1]d, '2023-06-15', 1.5, 'n'), (%[1]d, '2024-02-29', 'Infinity', NULL), (%[1]d + 1, '2024-12-31', NULL, 'x');
INSERT INTO keyless VALUES (%[1]d, 'b', '{"x": 1}'), (%[1]d, 'b', '{"x": 1}'), (NULL, NULL, NULL);`, first, bigSize, deepJSON(200))
	}
	e.exec(rows(1))
	e.start()
	e.sync()
	e.verify()
	// Through the stream: new rows, updates (a partition change, a
	// duplicate row of the keyless table, a large value unchanged or
	// changed), deletes.
	e.exec(rows(100))
	e.exec(`UPDATE "Ünïcode"."Tâble 表" SET net = net + 1, "order" = 'asc' WHERE "id" = 100;
UPDATE "Ünïcode"."Tâble 表" SET big_secret = big_secret || 'x' WHERE "id" = 1;
UPDATE measurements SET at = '2024-01-01' WHERE id = 100 AND at = '2023-06-15';
UPDATE keyless SET b = 'c' WHERE a = 100;
DELETE FROM keyless WHERE a IS NULL;
DELETE FROM "Ünïcode"."Tâble 表" WHERE "id" = 2;`)
	e.sync()
	e.verify()
	// The generated column is not published, so the replica has none.
	var n int
	if err := e.dst.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.columns WHERE table_name = 'Tâble 表' AND column_name = 'gross'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the replica has the generated column (%d, %v)", n, err)
	}
}
