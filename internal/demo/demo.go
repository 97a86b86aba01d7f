// Package demo fills the demo's multi-tenant SaaS database
// (examples/saas/schema.sql) with realistic personal data and then plays
// live application traffic against it, so that `pgveil demo` has something
// worth masking: emails on many providers, names with accents, phone
// numbers in several national formats, street addresses and zip codes,
// birth dates, free text that quotes phone and card numbers, JSON documents
// with nested addresses, national ids and emails, IBANs and card digits,
// and soft-deleted customers for the rules' row filter.
//
// Seed is deterministic: the same Options give the same rows. Traffic is
// not: it draws from a randomly seeded generator.
package demo

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Options for Seed.
type Options struct {
	// Scale is the approximate total number of rows across all tables;
	// 0 means 100000. Scales below 1000 are raised to 1000, so that every
	// table gets some rows.
	Scale int
	// Seed seeds the generator: the same seed gives the same data. 0
	// stands for a fixed default seed, not a random one.
	Seed uint64
}

// seedTables are the schema's tables, parents first.
var seedTables = [...]string{"accounts", "users", "customers", "orders", "payments", "support_tickets", "events"}

// Seed fills an empty examples/saas database (schema already loaded) with
// about o.Scale rows, in proportions that look like a real SaaS: few
// accounts, more users, many customers, more orders, payments for most
// orders, some tickets, many events. Every table is loaded with COPY in one
// transaction, with explicit ids that grow with created_at; the tables'
// sequences are then moved past the largest id, and the tables analyzed.
// Timestamps lie before 2026-11-01, a fixed "now", so that the same seed
// gives the same rows on any day.
//
// It returns the number of rows written. It fails, writing nothing, when a
// table already has rows.
func Seed(ctx context.Context, conn *pgx.Conn, o Options) (rows int64, err error) {
	var busy string
	for _, t := range seedTables {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM "+t+")").Scan(&exists); err != nil {
			return 0, fmt.Errorf("demo: checking that %s is empty (is examples/saas/schema.sql loaded?): %w", t, err)
		}
		if exists && busy == "" {
			busy = t
		}
	}
	if busy != "" {
		return 0, fmt.Errorf("demo: table %s already has rows: Seed needs an empty database", busy)
	}

	s := newSeeder(o)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("demo: beginning the seed transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	rows, err = s.copyAll(ctx, tx)
	if err != nil {
		return 0, err
	}
	for _, t := range seedTables {
		q := "SELECT setval(pg_get_serial_sequence('" + t + "', 'id'), COALESCE(max(id), 0) + 1, false) FROM " + t
		if _, err = tx.Exec(ctx, q); err != nil {
			return 0, fmt.Errorf("demo: resetting the id sequence of %s: %w", t, err)
		}
	}
	if err = tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("demo: committing the seed: %w", err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE accounts, users, customers, orders, payments, support_tickets, events"); err != nil {
		return rows, fmt.Errorf("demo: analyzing the seeded tables: %w", err)
	}
	return rows, nil
}

// NewestCustomerIDs returns the ids of the n newest customers that are
// not soft-deleted (the live traffic keeps adding them), newest first, for
// the demo to show rows arriving.
func NewestCustomerIDs(ctx context.Context, conn *pgx.Conn, n int) ([]int64, error) {
	rows, err := conn.Query(ctx, `SELECT id FROM customers WHERE deleted_at IS NULL ORDER BY id DESC LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("demo: finding the newest customers: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("demo: finding the newest customers: %w", err)
	}
	return ids, nil
}

// SampleCustomerID returns the id of a customer that is not soft-deleted,
// preferring one with a full profile (address, national id and contacts in
// the JSON, a phone, a birth date, notes) and at least one order, for the
// demo's raw-beside-masked display. The choice is stable: the lowest such
// id.
func SampleCustomerID(ctx context.Context, conn *pgx.Conn) (int64, error) {
	const full = `
SELECT c.id FROM customers c
WHERE c.deleted_at IS NULL
  AND c.profile ? 'address' AND c.profile ? 'ssn' AND c.profile ? 'contacts'
  AND c.phone IS NOT NULL AND c.birth_date IS NOT NULL AND c.notes IS NOT NULL
  AND EXISTS (SELECT FROM orders o WHERE o.customer_id = c.id)
ORDER BY c.id LIMIT 1`
	const anyCustomer = `SELECT id FROM customers WHERE deleted_at IS NULL ORDER BY id LIMIT 1`
	var id int64
	err := conn.QueryRow(ctx, full).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		err = conn.QueryRow(ctx, anyCustomer).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("demo: no customer that is not soft-deleted: %w", err)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("demo: finding a sample customer: %w", err)
	}
	return id, nil
}
