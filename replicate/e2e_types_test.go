package replicate

import (
	"context"
	"testing"
)

// Every supported type, through the snapshot and the stream, kept as is
// and masked where a rule applies; edge values included.
const typesSchema = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE "Sales Status" AS ENUM ('Open', 'Closed');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE SCHEMA "Other";
CREATE TABLE "Other"."All Types" (
  id integer PRIMARY KEY,
  i2 smallint, i4 integer, i8 bigint, n numeric, n82 numeric(8,2), f4 real, f8 double precision,
  t text, vc varchar(12), ch char(4), b boolean, d date, ts timestamp, ts3 timestamp(3), tz timestamptz,
  tm time, tmz timetz, iv interval, u uuid, by bytea, j json, jb jsonb, ip inet, cidr cidr, mac macaddr,
  r4 int4range, rts tsrange, ia integer[], ta text[], ta2 text[][], m mood, ms mood[], st "Sales Status",
  dp posint, bits bit(4), vb varbit, mny money, pt point, x xml, "Mixed Case" text, "select" text
);
CREATE TABLE masked (
  id bigint PRIMARY KEY,
  h_i2 smallint, h_i8 bigint, h_n numeric, h_n82 numeric(8,2), h_t text, h_vc varchar(20), h_u uuid, h_by bytea,
  tr_d date, tr_tz timestamptz, tr_n numeric(10,3), tr_f double precision, tr_t text,
  no_i integer, no_d date, no_ts timestamp,
  rd_b boolean, rd_j jsonb, p_t text, f_e text, f_ip inet, js jsonb, ja text[]
);
`

const typesRules = `  '"Other"."All Types"':
    columns: {id: keep, i2: keep, i4: keep, i8: keep, n: keep, n82: keep, f4: keep, f8: keep, t: keep, vc: keep,
      ch: keep, b: keep, d: keep, ts: keep, ts3: keep, tz: keep, tm: keep, tmz: keep, iv: keep, u: keep, by: keep,
      j: keep, jb: keep, ip: keep, cidr: keep, mac: keep, r4: keep, rts: keep, ia: keep, ta: keep, ta2: keep, m: keep,
      ms: keep, st: keep, dp: keep, bits: keep, vb: keep, mny: keep, pt: keep, x: keep, '"Mixed Case"': keep, '"select"': keep}
  masked:
    columns:
      id: hash
      h_i2: hash
      h_i8: hash
      h_n: hash
      h_n82: hash
      h_t: hash
      h_vc: hash
      h_u: hash
      h_by: hash
      tr_d: {truncate: month}
      tr_tz: {truncate: day}
      tr_n: {truncate: {step: 0.5}}
      tr_f: {truncate: {step: 10}}
      tr_t: {truncate: 3}
      no_i: {noise: 0.2}
      no_d: {noise: 10d}
      no_ts: {noise: 3h}
      rd_b: {redact: false}
      rd_j: {redact: '{"redacted": true}'}
      p_t: {partial: {keep_first: 1, keep_last: 1}}
      f_e: {fake: email}
      f_ip: {fake: ipv4}
      js: {json: {"$.a": hash, "$.list[*].x": {fake: name}, "$.drop": drop}}
      ja: {fake: first_name}
`

const typesRows = `
INSERT INTO "Other"."All Types" VALUES
 (1, 32767, -2147483648, 9223372036854775807, 'NaN', -999999.99, 'Infinity', '-Infinity',
  E'tab\there\nnewline \\ back ''q'' "dq" ünïcødé 🙂', 'twelve chars', 'ab', true, '0044-03-15 BC', 'infinity',
  '2024-02-29 23:59:59.999', '2024-03-15 13:45:12.123456+05:30', '24:00:00', '12:00:00+05:30',
  '1 year 2 mons -3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff5c', '{"a": [1, "x\\u0000y"]}',
  '{"z": null, "a": {"b": [1.5e3, true]}}', '2001:db8::1/64', '10.0.0.0/8', '08:00:2b:01:02:03', '[1,10)', '[2024-01-01,2024-02-01)',
  '{1,NULL,3}', '{"a b",NULL,"",NULL}', '{{a,b},{c,NULL}}', 'happy', '{sad,NULL,ok}', 'Open', 5, B'1010', B'101',
  12.34, '(1.5,2)', '<a>x &amp; y</a>', 'MC', 'kw'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -32768, 0, -9223372036854775808, '-0.000001', 0, 'NaN', 1e-300, '', '', '', false, '5874897-12-31', '294276-12-31 23:59:59.999999',
  '-infinity', '4713-11-24 00:00:00+00 BC', '00:00:00', '23:59:59.999999-12', '-178000000 years', '00000000-0000-0000-0000-000000000000',
  '\x', '[]', '[]', '0.0.0.0', '0.0.0.0/0', '00:00:00:00:00:00', 'empty', '(,)', '{}', '{}', '{}', 'sad', '{}', 'Closed', 1,
  B'0000', B'', -1, '(0,0)', '<r/>', '', '');
INSERT INTO masked VALUES
 (1, 32767, 9223372036854775807, 12.5, 123.45, 'alice', 'bob@example.com', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x0102',
  '2024-02-29', '2024-03-15 13:45:12+05:30', 12.345, 123.4, 'Ünïcode text', 100, '2024-01-01', '2024-01-01 12:00:00',
  true, '{"x": 1}', 'secret', 'a@b.c', '1.2.3.4', '{"a": 42, "list": [{"x": "n1"}, {"x": "n2", "y": 1}], "drop": "me", "keep": "k"}', '{"Ann",NULL,"Bob"}'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -32768, -9223372036854775808, 'NaN', -999999.99, '', 'x', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\x',
  '4713-01-01 BC', 'infinity', 'NaN', 'NaN', '', 2147483647, '5874897-12-31', '294276-12-31 23:59:59.999999',
  false, 'null', '', '', '::1', '{"a": "str", "list": []}', '{}');
`

func TestReplicateEveryType(t *testing.T) {
	e := newE2E(t, typesSchema, typesRules)
	e.exec(typesRows)
	e.start()
	e.sync()
	e.verify()
	// The same rows again through the stream.
	e.exec(`DELETE FROM "Other"."All Types"; DELETE FROM masked;`)
	e.sync()
	e.verify()
	e.exec(typesRows)
	e.sync()
	e.verify()
	e.exec(`UPDATE "Other"."All Types" SET t = t || '!', ia = ia || 4, jb = jb || '{"new": 1}' WHERE id = 1;
UPDATE masked SET id = id + 100, h_t = h_t || 'x' WHERE id = 1;`)
	e.sync()
	e.verify()
	var n int64
	if err := e.dst.QueryRow(context.Background(), `SELECT count(*) FROM "Other"."All Types"`).Scan(&n); err != nil || n != 3 {
		t.Errorf("replica has %d rows (%v)", n, err)
	}
}
