package replicate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// sourceParams make the source send values in the text forms the
// transformers read (see package transform), whatever the server's or
// role's defaults, and name pgveil in pg_stat_activity.
func sourceParams() map[string]string {
	return map[string]string{
		"DateStyle":          "ISO, MDY",
		"IntervalStyle":      "postgres",
		"bytea_output":       "hex",
		"extra_float_digits": "3",
		"TimeZone":           "UTC",
		"application_name":   "pgveil",
	}
}

// productionParams are sourceParams and, for production only,
// search_path pg_catalog alone (pg_temp last): a rule's where is SQL
// that pgveil's sessions parse again and again, and with the default
// "$user", public an application role that may create in public could
// define an operator or function that wins over the built-in one in
// those sessions only (public.<> (varchar, varchar), for which
// pg_catalog has no exact match), letting rows the where excludes in and
// running its code with pgveil's rights. Every name pgveil writes is
// qualified; a where that calls a function of the application's must
// qualify it too.
func productionParams() map[string]string {
	p := sourceParams()
	p["search_path"] = "pg_catalog, pg_temp"
	return p
}

// connectSource opens a normal connection to the source.
func connectSource(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("source DSN: %w", errDSN())
	}
	for k, v := range productionParams() {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the source: %w", err)
	}
	return conn, nil
}

// streamAppName is the application_name of pgveil's replication
// connection for slot: it lets StartOver see a pgveil that holds the
// slot's exported snapshot (the slot itself is not active then).
func streamAppName(slot string) string { return "pgveil-stream " + slot }

// connectReplication opens a logical replication connection to the source
// for slot.
func connectReplication(ctx context.Context, dsn, slot string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("source DSN: %w", errDSN())
	}
	for k, v := range productionParams() {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["application_name"] = streamAppName(slot)
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening a replication connection to the source: %w", err)
	}
	return conn, nil
}

// connectTarget opens a connection to the analytics database.
func connectTarget(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("target DSN: %w", errDSN())
	}
	// The same text forms as the source: values written are read back
	// identically (verify compares them byte for byte).
	for k, v := range sourceParams() {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the target: %w", err)
	}
	return conn, nil
}

// errDSN replaces a DSN parse error, which can quote the DSN and its
// password, by a message that says only that parsing failed.
func errDSN() error {
	return fmt.Errorf("cannot parse the connection string (check its syntax; it is not shown because it may hold a password)")
}

// ConnectTarget opens a connection to the analytics database with the
// same session settings as the pipeline's.
func ConnectTarget(ctx context.Context, dsn string) (*pgx.Conn, error) {
	return connectTarget(ctx, dsn)
}
