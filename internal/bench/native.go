package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Native is a native logical replication subscription in an analytics
// database, from a publication of every example and bench table (all
// columns, unmasked): the baseline pgveil is held to.
type Native struct {
	Name   string // of the publication, the subscription and its slot
	DSN    string // of the subscriber database
	conn   *pgx.Conn
	source string // production's DSN, for the subscription
}

// allTables are the tables both subjects replicate.
func allTables() []string {
	return append(append([]string{}, Tables...), "bench_heartbeat", "bench_marker", "bench_big")
}

// NewNative creates the publication on production and a new analytics
// database holding the schema; Subscribe starts replicating into it.
func (s *Site) NewNative(ctx context.Context, name string) (*Native, error) {
	dsn, err := s.NewTargetDB(ctx, name, true)
	if err != nil {
		return nil, err
	}
	if err := s.execProd(ctx, fmt.Sprintf(`DROP PUBLICATION IF EXISTS %[1]s; CREATE PUBLICATION %[1]s FOR TABLE %[2]s`,
		name, strings.Join(allTables(), ", "))); err != nil {
		return nil, fmt.Errorf("native: creating the publication: %w", err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &Native{Name: name, DSN: dsn, conn: conn, source: s.Prod.DSN("app")}, nil
}

// Subscribe creates the subscription; copyData is its copy_data.
func (n *Native) Subscribe(ctx context.Context, copyData bool) error {
	_, err := n.conn.Exec(ctx, fmt.Sprintf(`CREATE SUBSCRIPTION %[1]s CONNECTION '%[2]s' PUBLICATION %[1]s WITH (copy_data = %[3]t, slot_name = '%[1]s')`,
		n.Name, n.source, copyData))
	if err != nil {
		return fmt.Errorf("native: creating the subscription: %w", err)
	}
	return nil
}

// WaitSynced waits until every table of the subscription has finished its
// initial copy.
func (n *Native) WaitSynced(ctx context.Context, timeout time.Duration) error {
	want := len(allTables())
	return waitUntil(ctx, nil, timeout, 20*time.Millisecond, "the native initial sync", func(ctx context.Context) (bool, error) {
		var ready, total int
		err := n.conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE srsubstate = 'r'), count(*) FROM pg_subscription_rel r
JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`, n.Name).Scan(&ready, &total)
		return err == nil && total == want && ready == want, err
	})
}

// Disable stops the subscription's apply worker; its slot keeps the WAL.
func (n *Native) Disable(ctx context.Context) error {
	if _, err := n.conn.Exec(ctx, `ALTER SUBSCRIPTION `+n.Name+` DISABLE`); err != nil {
		return err
	}
	// Wait until the worker has gone, so that the backlog piles up.
	return waitUntil(ctx, nil, 3*time.Minute, 50*time.Millisecond, "the native apply worker to stop", func(ctx context.Context) (bool, error) {
		var active bool
		err := n.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL)`, n.Name).Scan(&active)
		return !active, err
	})
}

// Enable starts the apply worker again.
func (n *Native) Enable(ctx context.Context) error {
	_, err := n.conn.Exec(ctx, `ALTER SUBSCRIPTION `+n.Name+` ENABLE`)
	return err
}

// waitWorker waits until the subscription's apply worker runs.
func (n *Native) waitWorker(ctx context.Context) error {
	return waitUntil(ctx, nil, 3*time.Minute, 2*time.Millisecond, "the native apply worker to start", func(ctx context.Context) (bool, error) {
		var active bool
		err := n.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL AND relid IS NULL)`, n.Name).Scan(&active)
		return active, err
	})
}

// Conn is a connection to the subscriber database.
func (n *Native) Conn() *pgx.Conn { return n.conn }

// Drop removes the subscription (and its slot on production) and the
// publication.
func (n *Native) Drop(ctx context.Context, s *Site) error {
	_, err := n.conn.Exec(ctx, `DROP SUBSCRIPTION IF EXISTS `+n.Name)
	n.conn.Close(context.Background())
	if err != nil {
		return fmt.Errorf("native: dropping the subscription: %w", err)
	}
	return s.execProd(ctx, `DROP PUBLICATION IF EXISTS `+n.Name)
}
