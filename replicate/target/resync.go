package target

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
	"pgveil/transform"
)

// StagingSchema holds tables being re-copied, out of readers' sight, until
// they are switched in.
const StagingSchema = "pgveil_staging"

// StagingPlan returns a plan of t that writes to t's staging table: the
// same columns and rules under another name.
func StagingPlan(t *transform.TablePlan) *transform.TablePlan {
	tbl := &schema.Table{Schema: StagingSchema, Name: stagingName(t.Table.Schema, t.Table.Name), Columns: t.Table.Columns}
	return &transform.TablePlan{Table: tbl, Where: t.Where, Columns: append([]transform.ColumnPlan(nil), t.Columns...), Dropped: t.Dropped}
}

// stagingNamePrefix is how many bytes of the table's name a staging name
// keeps, for people reading the staging schema: with "s", 12 hex digits
// and "_", a staging name stays within PostgreSQL's 63-byte identifiers.
const stagingNamePrefix = 40

// stagingName is the staging table's name of schemaName.name: unique
// through the hash of the full names, readable through the name's first
// bytes, cut at a character boundary (a name cut inside a character is
// not UTF-8, and the server refuses it).
func stagingName(schemaName, name string) string {
	sum := sha256.Sum256([]byte(schemaName + "\x00" + name))
	if len(name) > stagingNamePrefix {
		cut := stagingNamePrefix
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = name[:cut]
	}
	return "s" + hex.EncodeToString(sum[:6]) + "_" + name
}

// PrepareStaging drops what an earlier attempt left in the staging schema
// and creates empty staging tables (see StagingPlan) for tables, with the
// enum types they need. Readers get nothing there.
func PrepareStaging(ctx context.Context, conn *pgx.Conn, staging []*transform.TablePlan, enums map[string][]string) error {
	if err := dropStaging(ctx, conn); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM pgveil.tables WHERE schema_name = $1`, StagingSchema); err != nil {
		return fmt.Errorf("staging: %w", sanitize(err))
	}
	if err := Setup(ctx, conn, transform.NewPlan(staging), enums, nil); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	if _, err := conn.Exec(ctx, `REVOKE ALL ON SCHEMA `+schema.QuoteIdent(StagingSchema)+` FROM PUBLIC`); err != nil {
		return fmt.Errorf("staging: %w", sanitize(err))
	}
	return nil
}

// dropStaging drops the staging schema and what it holds, waiting at most
// lockTimeout for their locks: a DROP queued behind a lock (an earlier
// attempt's loader, a reader of the staging tables) would block every
// query queued behind it, readers' included. A lock timeout comes back as
// a ServerError (schema.IsLockTimeout), and the attempt is retried.
func dropStaging(ctx context.Context, conn *pgx.Conn) (err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return sanitize(err)
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			_ = tx.Rollback(rctx)
		}
	}()
	for _, q := range []string{
		`SET LOCAL lock_timeout = '` + lockTimeout + `'`,
		`DROP SCHEMA IF EXISTS ` + schema.QuoteIdent(StagingSchema) + ` CASCADE`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return sanitize(err)
		}
	}
	return sanitize(tx.Commit(ctx))
}

// SwitchSQL returns the statements that replace live by its staging table
// in one transaction: readers see the old table until the transaction
// commits, then the new one, never an empty or half table. Readers get
// SELECT on it, and pgveil.tables records the copy.
// rulesHash is recorded as the fingerprint the new table was copied under.
func SwitchSQL(live, staging *transform.TablePlan, readers []string, rulesHash string) []string {
	schemaName := schema.QuoteIdent(live.Table.Schema)
	stmts := []string{
		`SET LOCAL lock_timeout = '` + lockTimeout + `'`,
		`CREATE SCHEMA IF NOT EXISTS ` + schemaName,
		// pgveil's views over the table go with it and come back over the
		// new one (views.go).
		viewsBeforeSwitch(live),
		`DROP TABLE IF EXISTS ` + tableIdent(live),
		moveStagingSQL(live, staging),
		viewsAfterSwitch(),
		`DELETE FROM pgveil.tables WHERE schema_name = ` + schema.QuoteLiteral(StagingSchema) + ` AND table_name = ` + schema.QuoteLiteral(staging.Table.Name),
		`INSERT INTO pgveil.tables (schema_name, table_name, state, rows, updated_at, rules_hash) VALUES (` + schema.QuoteLiteral(live.Table.Schema) + `, ` +
			schema.QuoteLiteral(live.Table.Name) + `, '` + StateCopied + `', NULL, now(), ` + schema.QuoteLiteral(rulesHash) + `) ON CONFLICT (schema_name, table_name) DO UPDATE SET state = EXCLUDED.state, rows = NULL, updated_at = now(), rules_hash = EXCLUDED.rules_hash, tenant_roles = NULL`,
	}
	if len(readers) > 0 {
		stmts = append(stmts, `GRANT USAGE ON SCHEMA `+schemaName+` TO `+schema.QuoteIdents(readers),
			`GRANT `+ReadPrivileges+` ON `+tableIdent(live)+` TO `+schema.QuoteIdents(readers))
	}
	return stmts
}

// moveStagingSQL returns the statement that puts the staging table in
// live's place (live must be gone) with the constraint names a first copy
// gives it. PostgreSQL names a table's constraints and their indexes after
// the table when it creates them ("s13ad7471fee2_address_pkey" on a
// staging table), and a rename of the table keeps them. The names a first
// copy would get come from PostgreSQL itself rather than from a copy of
// its rules (truncation within 63 bytes by characters, a number when the
// name is taken in the schema, the NOT NULL constraints PostgreSQL 18
// catalogues): an empty probe table is created under live's name exactly
// as Setup creates a table, its constraint names are read, matched to the
// staging table's by kind and columns, and the probe is dropped before the
// staging table moves in and takes them. All of it in the switch's
// transaction: nobody sees the probe.
func moveStagingSQL(live, staging *transform.TablePlan) string {
	liveName := schema.QuoteLiteral(tableIdent(live))
	body := `DECLARE have text[]; want text[]; BEGIN
EXECUTE ` + schema.QuoteLiteral(createTableSQL(live)) + `;
SELECT coalesce(pg_catalog.array_agg(s.conname ORDER BY s.conname), '{}'), coalesce(pg_catalog.array_agg(p.conname ORDER BY s.conname), '{}') INTO have, want
	FROM pg_catalog.pg_constraint p JOIN pg_catalog.pg_constraint s ON s.conrelid = ` + schema.QuoteLiteral(tableIdent(staging)) + `::pg_catalog.regclass
		AND s.contype = p.contype AND s.conkey IS NOT DISTINCT FROM p.conkey
	WHERE p.conrelid = ` + liveName + `::pg_catalog.regclass AND s.conname <> p.conname;
EXECUTE 'DROP TABLE ' || ` + liveName + `;
EXECUTE ` + schema.QuoteLiteral(`ALTER TABLE `+tableIdent(staging)+` SET SCHEMA `+schema.QuoteIdent(live.Table.Schema)) + `;
EXECUTE ` + schema.QuoteLiteral(`ALTER TABLE `+schema.Qualified(live.Table.Schema, staging.Table.Name)+` RENAME TO `+schema.QuoteIdent(live.Table.Name)) + `;
FOR i IN 1 .. coalesce(pg_catalog.array_length(have, 1), 0) LOOP
	EXECUTE pg_catalog.format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', ` + liveName + `, have[i], want[i]);
END LOOP;
END`
	return `DO ` + schema.QuoteDollar(body)
}

// DropSQL returns the statements that remove a table no rule names any
// more from the replica: what the rules no longer allow must go.
func DropSQL(live *transform.TablePlan) []string {
	return []string{
		`SET LOCAL lock_timeout = '` + lockTimeout + `'`,
		`DROP TABLE IF EXISTS ` + tableIdent(live),
		`DELETE FROM pgveil.tables WHERE schema_name = ` + schema.QuoteLiteral(live.Table.Schema) + ` AND table_name = ` + schema.QuoteLiteral(live.Table.Name),
	}
}

// Exec runs sql (no parameters) in the open transaction, after the
// changes queued before it.
func (a *Applier) Exec(ctx context.Context, sql string) error {
	if !a.inTx {
		return errNoTx
	}
	// The changes applied before it are written before it.
	if err := a.writeNet(ctx); err != nil {
		a.abort(ctx)
		return err
	}
	a.batch.ExecParams(sql, nil, nil, nil, nil)
	a.queued = append(a.queued, queued{what: "statement: " + firstWords(sql)})
	if _, err := a.flush(ctx); err != nil {
		a.abort(ctx)
		return err
	}
	return nil
}

// firstWords names a statement in messages without its identifiers' full list.
func firstWords(sql string) string {
	f := strings.Fields(sql)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}
