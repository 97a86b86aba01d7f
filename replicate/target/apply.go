package target

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/schema"
	"pgveil/transform"
)

// Op is a change kind.
type Op uint8

// The change kinds.
const (
	OpInsert Op = iota + 1
	OpUpdate
	OpDelete
	OpTruncate
)

// String is the operation's name in lower case ("insert").
func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpTruncate:
		return "truncate"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Change is one masked row change, ready to apply.
type Change struct {
	Op Op
	// Table is the changed table, for OpInsert, OpUpdate and OpDelete.
	Table *transform.TablePlan
	// Row holds, for OpInsert and OpUpdate, the new values of
	// Table.Columns, in order. An update may hold transform.Unchanged for
	// unchanged TOASTed columns: those keep their value on the target.
	Row []schema.Value
	// Key holds, for OpUpdate and OpDelete, the old identity of the row:
	// the values of the columns KeyColumns(Table) lists, in that order.
	// For OpUpdate it is nil when the key did not change (the key is then
	// read from Row).
	Key []schema.Value
	// Tables are the tables an OpTruncate empties.
	Tables []*transform.TablePlan
	// Cascade and RestartIdentity are the TRUNCATE's options. The target
	// ignores them: it has no sequences, the source lists every published
	// table a cascade empties, and a foreign key whose referencing table is
	// not listed is dropped before the TRUNCATE (ForeignKeys.truncateSQL).
	Cascade, RestartIdentity bool
	// Filter, when not nil on an OpInsert or OpUpdate, is the table's
	// in-process row filter, and FilterRow the raw source values it reads.
	// The row is written only if it passes; one that fails becomes a
	// delete by key (it may have passed before). On a table with a key the
	// Applier evaluates the filters of a whole batch at once, when it
	// writes it: one round trip to the source instead of one per change.
	Filter    RowFilter
	FilterRow []schema.Value
}

// RowFilter decides which rows pass a table's in-process row filter, given
// each row's raw filter values (Change.FilterRow).
type RowFilter interface {
	Match(ctx context.Context, rows [][]schema.Value) ([]bool, error)
}

// Flush thresholds: a batch is sent when it holds this many statements or
// this many bytes of values, whichever comes first.
const (
	flushStatements = 1000
	flushBytes      = 8 << 20
)

// rollbackTimeout bounds the ROLLBACK sent after a failure.
const rollbackTimeout = 10 * time.Second

// stmtKind is the shape of a prepared statement.
type stmtKind uint8

const (
	stmtUpsert     stmtKind = iota + 1 // INSERT (ON CONFLICT DO UPDATE when the table has a key)
	stmtDelete                         // DELETE one row by key
	stmtUpdate                         // UPDATE the columns of a set, by key
	stmtCheckpoint                     // the checkpoint upsert
	stmtNetUpsert                      // net changes: upsert of rows from text arrays
	stmtNetDelete                      // net changes: delete of keys from text arrays
	stmtNetUpdate                      // net changes: update of a set of columns from text arrays
)

// stmtKey identifies a prepared statement.
type stmtKey struct {
	table *transform.TablePlan
	kind  stmtKind
	cols  string // stmtUpdate: one byte per column, 1 when the column is set
}

// tableInfo is what the Applier derives once from a TablePlan.
type tableInfo struct {
	name  string   // quoted, qualified
	label string   // for messages
	cols  []string // quoted column names
	names []string // column names as they are
	// casts are the types the net statements cast each column's text to
	// (castType).
	casts   []string
	all     []int // 0, 1, ... every column
	key     []int // KeyColumns
	isKey   []bool
	hasPK   bool
	textCmp []bool // match as text: the type has no equality operator
}

// queued describes a statement of the current batch, for error messages.
type queued struct {
	what   string // "begin", "checkpoint", "commit"; "" for a change
	op     Op
	table  string
	rows   int  // net changes: rows the statement writes
	upsert bool // net changes: rows inserted or updated
}

func (q queued) String() string {
	switch {
	case q.rows > 0 && q.upsert:
		return fmt.Sprintf("insert or update of %s (%s)", q.table, rowsWord(q.rows))
	case q.rows > 0 && q.op == OpDelete:
		return fmt.Sprintf("delete from %s (%s)", q.table, rowsWord(q.rows))
	case q.rows > 0:
		return fmt.Sprintf("update of %s (%s)", q.table, rowsWord(q.rows))
	case q.what != "":
		return q.what
	case q.op == OpInsert:
		return "insert into " + q.table
	case q.op == OpUpdate:
		return "update of " + q.table
	case q.op == OpDelete:
		return "delete from " + q.table
	}
	return q.op.String() + " of " + q.table
}

func rowsWord(n int) string {
	if n == 1 {
		return "1 row"
	}
	return strconv.Itoa(n) + " rows"
}

// Applier applies changes to the target in transactions that also record
// the source position they reach, so that each source transaction is
// applied exactly once.
//
// Statements are prepared once per connection and pipelined: Apply queues
// them and sends a batch when 1000 are queued; Commit sends the rest with
// the checkpoint and COMMIT in one round trip. An error anywhere rolls the
// whole transaction back (Apply, Commit and Rollback can then be called
// again only after Begin). An Applier is not safe for concurrent use, and
// the connection must not be used by anything else between Begin and
// Commit or Rollback. Statements are prepared on the connection the
// Applier was made with: after a reconnection, make a new Applier.
type Applier struct {
	conn    *pgx.Conn
	slot    string
	prefix  string // prepared statement names
	nstmt   int
	stmts   map[stmtKey]string
	tables  map[*transform.TablePlan]*tableInfo
	flushAt int

	inTx    bool
	batch   *pgconn.Batch
	queued  []queued
	bytes   int
	pending int

	params  [][]byte
	setMask []byte
	keyBuf  []schema.Value

	// Net changes (net.go): per table with a key, each key's last state.
	net      map[*transform.TablePlan]*netTable
	netOrder []*netTable
	netRows  int
	arena    []byte // copies of the states' values
	keyText  []byte
	arrays   []byte  // the net statements' parameters (writeArrays)
	offsets  []int   // where each parameter ends in arrays
	binary   []int16 // parameter formats: all binary

	settings string // the statement that sets the transaction's parameters; "" until the first Begin

	// Tenancy (SetTenancy): the tenant column of each table (-1: none),
	// the tenant values seen in this transaction that may lack a role, and
	// those known to have one.
	tenancy     *Tenancy
	tenantCols  map[*transform.TablePlan]int
	newTenants  map[string]struct{}
	knownTenant map[string]struct{}

	// fkeys are the replica's foreign keys (fkeys.go), nil for none.
	fkeys *ForeignKeys

	// inflight, when not nil, delivers the outcome of a batch sent in the
	// background (a mid-transaction flush) while the caller prepares the
	// next one. Nothing else may use the connection until it is read.
	inflight chan error
}

// NewApplier returns an Applier that writes through conn and records its
// positions under slot in pgveil.checkpoint.
func NewApplier(conn *pgx.Conn, slot string) *Applier {
	return &Applier{
		conn:    conn,
		slot:    slot,
		prefix:  "pgveil_apply_" + strings.ToLower(rand.Text()[:10]) + "_",
		stmts:   map[stmtKey]string{},
		tables:  map[*transform.TablePlan]*tableInfo{},
		net:     map[*transform.TablePlan]*netTable{},
		flushAt: flushStatements,
	}
}

// Pending returns the number of changes applied since Begin, sent or not.
func (a *Applier) Pending() int { return a.pending }

// Begin starts a transaction. Nothing is sent yet: BEGIN travels with the
// first batch.
func (a *Applier) Begin(ctx context.Context) error {
	if a.inTx {
		return errors.New("begin: a transaction is already open")
	}
	pg := a.conn.PgConn()
	if pg.IsClosed() {
		return errors.New("begin: the connection is closed")
	}
	if st := pg.TxStatus(); st != 'I' {
		return fmt.Errorf("begin: the connection is already in a transaction (status %c)", st)
	}
	if a.settings == "" {
		// The values arrive in the forms the source printed with these
		// settings (see package transform), and a commit the source is
		// told about must be durable.
		var sync string
		if err := a.conn.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&sync); err != nil {
			return fmt.Errorf("begin: reading synchronous_commit: %w", sanitize(err))
		}
		a.settings = `SELECT set_config('datestyle', 'ISO, MDY', true), set_config('intervalstyle', 'postgres', true)`
		if sync == "off" {
			a.settings += `, set_config('synchronous_commit', 'on', true)`
		}
	}
	a.inTx = true
	a.pending = 0
	a.batch = &pgconn.Batch{}
	a.queued = a.queued[:0]
	a.bytes = 0
	a.batch.ExecParams("BEGIN", nil, nil, nil, nil)
	a.queued = append(a.queued, queued{what: "begin"})
	a.batch.ExecParams(a.settings, nil, nil, nil, nil)
	a.queued = append(a.queued, queued{what: "begin (settings)"})
	return nil
}

// errNoTx is returned by Apply and Commit outside a transaction.
var errNoTx = errors.New("no open transaction: call Begin (a transaction that failed was rolled back)")

// Apply applies c in the open transaction, in order after the changes
// applied before it. It may only queue c: a failure can then surface in a
// later Apply or in Commit. Errors name the table and the operation, never
// a value. After an error the transaction has been rolled back.
//
//   - Insert upserts the row (tables without a key: plain INSERT), so that
//     applying it again is harmless.
//   - Update: a row whose key changed moves (DELETE of the old key then
//     upsert of the row; or, when Row holds Unchanged values, an UPDATE of
//     every present column where the key is the old one). Otherwise a row
//     without Unchanged values is upserted (a row the target lacks, e.g.
//     one that newly passes a row filter, is inserted), and one with
//     Unchanged values gets its present columns updated where the key
//     matches (nothing happens when the target lacks it). On a table
//     without a key, the first row equal to the old one in every column
//     is updated.
//   - Delete removes the row with the key (a missing row is not an error);
//     on a table without a key, one row equal in every column.
//   - Truncate empties the tables.
func (a *Applier) Apply(ctx context.Context, c *Change) error {
	if !a.inTx {
		return errNoTx
	}
	var err error
	switch {
	case c == nil:
		err = errors.New("apply: nil change")
	case c.Op == OpInsert:
		err = a.insert(ctx, c)
	case c.Op == OpUpdate:
		err = a.update(ctx, c)
	case c.Op == OpDelete:
		err = a.delete(ctx, c)
	case c.Op == OpTruncate:
		err = a.truncate(ctx, c)
	default:
		err = fmt.Errorf("apply: unknown operation %d", c.Op)
	}
	if err == nil && a.tenancy != nil && (c.Op == OpInsert || c.Op == OpUpdate) && c.Filter == nil {
		// A row with an in-process filter is noted once it passes it
		// (passes, netFilter): a row that never reaches the replica must
		// not name a role.
		err = a.noteTenant(c.Table, c.Row)
	}
	if err == nil {
		a.pending++
		if len(a.queued)+a.netRows >= a.flushAt || a.bytes >= flushBytes {
			if err = a.writeNet(ctx); err == nil {
				err = a.flushBackground(ctx)
			}
		}
	}
	if err != nil {
		a.abort(ctx)
		return err
	}
	return nil
}

// Commit sends the queued changes, upserts pgveil.checkpoint(slot, pos)
// and commits, all in one round trip and one transaction. When Commit
// returns an error that is not a *ServerError (the connection broke), the
// COMMIT may or may not have happened: ReadCheckpoint, on a new
// connection, tells.
func (a *Applier) Commit(ctx context.Context, pos Position) error {
	if !a.inTx {
		return fmt.Errorf("commit: %w", errNoTx)
	}
	if err := a.writeNet(ctx); err != nil {
		a.abort(ctx)
		return err
	}
	a.queueTenants()
	name, err := a.stmt(ctx, stmtKey{kind: stmtCheckpoint}, func() string { return checkpointSQL })
	if err != nil {
		a.abort(ctx)
		return fmt.Errorf("commit: %w", err)
	}
	a.params = checkpointParams(a.params, a.slot, pos)
	a.batch.ExecPrepared(name, a.params, nil, nil)
	a.queued = append(a.queued, queued{what: "checkpoint"})
	a.batch.ExecParams("COMMIT", nil, nil, nil, nil)
	a.queued = append(a.queued, queued{what: "commit"})
	results, err := a.flush(ctx)
	if err != nil {
		a.abort(ctx)
		if !isServerError(err) {
			return fmt.Errorf("%w (the commit may or may not have happened: read the checkpoint)", err)
		}
		return err
	}
	a.inTx = false
	a.pending = 0
	if len(results) == 0 || results[len(results)-1].CommandTag.String() != "COMMIT" || a.conn.PgConn().TxStatus() != 'I' {
		a.abort(ctx)
		return errors.New("commit: the server rolled the transaction back")
	}
	a.tenantsCommitted()
	return nil
}

// Rollback abandons the open transaction, if any.
func (a *Applier) Rollback(ctx context.Context) error {
	_ = a.wait()
	a.reset()
	pg := a.conn.PgConn()
	if pg.IsClosed() || pg.TxStatus() == 'I' {
		return nil // nothing was sent, or the server ended the transaction
	}
	if _, err := pg.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
		return fmt.Errorf("rollback: %w", sanitize(err))
	}
	return nil
}

// reset forgets the transaction.
func (a *Applier) reset() {
	for _, nt := range a.netOrder {
		clear(nt.rows)
		nt.order = nt.order[:0]
	}
	a.netRows = 0
	a.arena = a.arena[:0]
	clear(a.newTenants)
	a.inTx = false
	a.batch = nil
	a.queued = a.queued[:0]
	a.bytes = 0
	a.pending = 0
}

// abort rolls the transaction back after an error, even when ctx is done.
func (a *Applier) abort(ctx context.Context) {
	_ = a.wait()
	a.reset()
	pg := a.conn.PgConn()
	if pg.IsClosed() || pg.TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_, _ = pg.Exec(rctx, "ROLLBACK").ReadAll()
}

// flush sends the queued statements and reads their results, after the
// batch in flight, if any.
func (a *Applier) flush(ctx context.Context) ([]*pgconn.Result, error) {
	if err := a.wait(); err != nil {
		return nil, err
	}
	if len(a.queued) == 0 {
		return nil, nil
	}
	batch, queued := a.take()
	return a.send(ctx, batch, queued)
}

// flushBackground sends the queued statements without waiting for their
// results: the caller goes on (masking, queuing) while the target works.
// Their outcome is read by the next flush, wait, Commit or Rollback; a
// failure then rolls the transaction back as if it had happened there.
func (a *Applier) flushBackground(ctx context.Context) error {
	if err := a.wait(); err != nil {
		return err
	}
	if len(a.queued) == 0 {
		return nil
	}
	batch, queued := a.take()
	done := make(chan error, 1)
	a.inflight = done
	go func() {
		_, err := a.send(ctx, batch, queued)
		done <- err
	}()
	return nil
}

// wait reads the outcome of the batch in flight, if any.
func (a *Applier) wait() error {
	if a.inflight == nil {
		return nil
	}
	err := <-a.inflight
	a.inflight = nil
	return err
}

// take hands the queued statements over for sending and starts a new
// batch. The values were encoded into the batch when queued, so the
// arena holding the net states may be reused.
func (a *Applier) take() (*pgconn.Batch, []queued) {
	batch, queued := a.batch, slices.Clone(a.queued)
	a.batch = &pgconn.Batch{}
	a.queued = a.queued[:0]
	a.bytes = 0
	a.arena = a.arena[:0] // the states it held were written (writeNet) before
	return batch, queued
}

// send sends a batch and reads its results. It uses nothing of the
// Applier's but the connection.
func (a *Applier) send(ctx context.Context, batch *pgconn.Batch, queued []queued) ([]*pgconn.Result, error) {
	results, err := a.conn.PgConn().ExecBatch(ctx, batch).ReadAll()
	if err == nil {
		for i, r := range results {
			if r.Err != nil {
				results, err = results[:i], r.Err
				break
			}
		}
	}
	if err != nil {
		// The statements before the failing one completed; the server
		// skipped the ones after it.
		what := "batch"
		if i := len(results); i < len(queued) {
			what = queued[i].String()
		}
		return nil, fmt.Errorf("%s: %w", what, sanitize(err))
	}
	return results, nil
}

// info returns what the Applier knows of t.
func (a *Applier) info(t *transform.TablePlan) (*tableInfo, error) {
	if t == nil || t.Table == nil {
		return nil, errors.New("change without a table")
	}
	if ti := a.tables[t]; ti != nil {
		return ti, nil
	}
	ti := &tableInfo{
		name:    tableIdent(t),
		label:   tableLabel(t),
		cols:    make([]string, len(t.Columns)),
		key:     KeyColumns(t),
		isKey:   make([]bool, len(t.Columns)),
		hasPK:   HasPrimaryKey(t),
		textCmp: make([]bool, len(t.Columns)),
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("%s has no columns", ti.label)
	}
	ti.names = make([]string, len(t.Columns))
	ti.casts = make([]string, len(t.Columns))
	ti.all = make([]int, len(t.Columns))
	for i, c := range t.Columns {
		ti.cols[i] = schema.QuoteIdent(c.Column.Name)
		ti.names[i] = c.Column.Name
		ti.textCmp[i] = NoEquality(c.Column.Type)
		ti.casts[i] = castType(c.Column.Type)
		ti.all[i] = i
	}
	for _, k := range ti.key {
		ti.isKey[k] = true
	}
	a.tables[t] = ti
	return ti, nil
}

// NoEquality reports whether typ has no equality operator, so that rows
// are matched on its text form (only tables without a key match on every
// column).
func NoEquality(typ schema.Type) bool {
	if typ.Kind == schema.KindJSON {
		return true
	}
	switch typ.Name {
	case "json", "xml", "point", "pg_catalog.json", "pg_catalog.xml", "pg_catalog.point":
		return true
	}
	return false
}

// stmt returns the name of the prepared statement for key, preparing sql()
// on first use. Parameter types are left to the server, which infers them
// from the columns.
func (a *Applier) stmt(ctx context.Context, key stmtKey, sql func() string) (string, error) {
	if name, ok := a.stmts[key]; ok {
		return name, nil
	}
	// Preparing uses the connection: the batch in flight must be done.
	if err := a.wait(); err != nil {
		return "", err
	}
	a.nstmt++
	name := a.prefix + strconv.Itoa(a.nstmt)
	if _, err := a.conn.PgConn().Prepare(ctx, name, sql(), nil); err != nil {
		return "", fmt.Errorf("preparing a statement: %w", sanitize(err))
	}
	a.stmts[key] = name
	return name, nil
}

// param returns v as a text-format parameter: nil for NULL, never nil
// for a present value (an empty one is the empty string, not NULL).
func param(v schema.Value) []byte {
	if v.State == schema.Null {
		return nil
	}
	if v.Text == nil {
		return []byte{}
	}
	return v.Text
}

// exec queues a prepared statement with a.params.
func (a *Applier) exec(name string, q queued) {
	a.batch.ExecPrepared(name, a.params, nil, nil)
	a.queued = append(a.queued, q)
	for _, p := range a.params {
		a.bytes += len(p)
	}
}

// checkRow checks a row's length and, for inserts, that it holds no
// Unchanged value.
func checkRow(ti *tableInfo, op Op, row []schema.Value) (unchanged bool, err error) {
	if len(row) != len(ti.cols) {
		return false, fmt.Errorf("%s %s: the row has %d values, the table %d columns", op, ti.label, len(row), len(ti.cols))
	}
	for _, v := range row {
		if v.State == schema.Unchanged {
			if op == OpInsert {
				return false, fmt.Errorf("insert into %s: a value is marked unchanged", ti.label)
			}
			unchanged = true
		}
	}
	return unchanged, nil
}

// checkKey checks an old key's length and that it holds no Unchanged value.
func checkKey(ti *tableInfo, op Op, key []schema.Value) error {
	if len(key) != len(ti.key) {
		return fmt.Errorf("%s %s: the key has %d values, the table %d key columns", op, ti.label, len(key), len(ti.key))
	}
	for _, v := range key {
		if v.State == schema.Unchanged {
			return fmt.Errorf("%s %s: a key value is marked unchanged", op, ti.label)
		}
	}
	return nil
}

func (a *Applier) insert(ctx context.Context, c *Change) error {
	ti, err := a.info(c.Table)
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	if _, err := checkRow(ti, OpInsert, c.Row); err != nil {
		return err
	}
	if ti.hasPK {
		a.netFullRow(a.netOf(c.Table, ti), a.rowKey(ti, c.Row), c.Row, c)
		return nil
	}
	if ok, err := a.passes(ctx, c); err != nil || !ok {
		return err
	}
	return a.upsert(ctx, c.Table, ti, OpInsert, c.Row)
}

// upsert queues the upsert (plain INSERT without a key) of row.
func (a *Applier) upsert(ctx context.Context, t *transform.TablePlan, ti *tableInfo, op Op, row []schema.Value) error {
	name, err := a.stmt(ctx, stmtKey{table: t, kind: stmtUpsert}, ti.upsertSQL)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, ti.label, err)
	}
	a.params = a.params[:0]
	for _, v := range row {
		a.params = append(a.params, param(v))
	}
	a.exec(name, queued{op: op, table: ti.label})
	return nil
}

// deleteKey queues the deletion of the row whose key is key.
func (a *Applier) deleteKey(ctx context.Context, t *transform.TablePlan, ti *tableInfo, op Op, key []schema.Value) error {
	name, err := a.stmt(ctx, stmtKey{table: t, kind: stmtDelete}, ti.deleteSQL)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, ti.label, err)
	}
	a.params = a.params[:0]
	for _, v := range key {
		a.params = append(a.params, param(v))
	}
	a.exec(name, queued{op: op, table: ti.label})
	return nil
}

// updateSet queues an UPDATE of the columns a.setMask marks, taking their
// values from row, of the row whose key is key.
func (a *Applier) updateSet(ctx context.Context, t *transform.TablePlan, ti *tableInfo, row, key []schema.Value) error {
	name, ok := a.stmts[stmtKey{table: t, kind: stmtUpdate, cols: string(a.setMask)}]
	if !ok {
		mask := string(a.setMask)
		var err error
		name, err = a.stmt(ctx, stmtKey{table: t, kind: stmtUpdate, cols: mask}, func() string { return ti.updateSQL(mask) })
		if err != nil {
			return fmt.Errorf("update of %s: %w", ti.label, err)
		}
	}
	a.params = a.params[:0]
	for i, set := range a.setMask {
		if set == 1 {
			a.params = append(a.params, param(row[i]))
		}
	}
	for _, v := range key {
		a.params = append(a.params, param(v))
	}
	a.exec(name, queued{op: OpUpdate, table: ti.label})
	return nil
}

// markPresent sets a.setMask to the columns of row that are not Unchanged
// (and, unless withKey, not key columns), and returns how many there are.
func (a *Applier) markPresent(ti *tableInfo, row []schema.Value, withKey bool) int {
	a.setMask = a.setMask[:0]
	n := 0
	for i, v := range row {
		set := v.State != schema.Unchanged && (withKey || !ti.isKey[i])
		if set {
			a.setMask = append(a.setMask, 1)
			n++
		} else {
			a.setMask = append(a.setMask, 0)
		}
	}
	return n
}

func (a *Applier) update(ctx context.Context, c *Change) error {
	ti, err := a.info(c.Table)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	unchanged, err := checkRow(ti, OpUpdate, c.Row)
	if err != nil {
		return err
	}
	if c.Key != nil {
		if err := checkKey(ti, OpUpdate, c.Key); err != nil {
			return err
		}
	}
	if !ti.hasPK {
		if c.Filter != nil {
			return fmt.Errorf("update of %s: an in-process row filter needs a table with a key", ti.label)
		}
		// The old row identifies the row; without it (the row did not
		// change), the new one does.
		old := c.Key
		if old == nil {
			if unchanged {
				return fmt.Errorf("update of %s: a table without a primary key needs the old row when values are unchanged", ti.label)
			}
			old = c.Row
		}
		if a.markPresent(ti, c.Row, true) == 0 {
			return nil
		}
		return a.updateSet(ctx, c.Table, ti, c.Row, old)
	}

	// The new key: from the row, or the old key where the row has none.
	newKey := a.keyBuf[:0]
	for j, k := range ti.key {
		v := c.Row[k]
		if v.State == schema.Unchanged {
			if c.Key == nil {
				return fmt.Errorf("update of %s: a key value is marked unchanged and the old key is missing", ti.label)
			}
			v = c.Key[j]
		}
		newKey = append(newKey, v)
	}
	a.keyBuf = newKey
	moved := c.Key != nil && !sameValues(c.Key, newKey)
	nt := a.netOf(c.Table, ti)
	switch {
	case moved && !unchanged:
		a.netDeleteKey(nt, c.Key)
		a.netFullRow(nt, newKey, c.Row, c)
	case !unchanged:
		a.netFullRow(nt, newKey, c.Row, c)
	case moved:
		if a.netMove(nt, c.Key, newKey, c.Row, c) {
			return nil
		}
		if c.Filter != nil {
			ok, err := a.passes(ctx, c)
			if err != nil {
				return err
			}
			if !ok {
				a.netDeleteKey(nt, c.Key)
				return nil
			}
		}
		// The moved row's other values are only in the target: write
		// the table's states, then move it there.
		if err := a.writeNetTable(ctx, nt); err != nil {
			return err
		}
		a.markPresent(ti, c.Row, true)
		return a.updateSet(ctx, c.Table, ti, c.Row, c.Key)
	default:
		if a.markPresent(ti, c.Row, false) == 0 && c.Filter == nil {
			return nil // only the key, unchanged, is present: nothing to write
		}
		a.netPartialUpdate(nt, newKey, c.Row, c)
	}
	return nil
}

// passes evaluates c's row filter, if any, on its own.
func (a *Applier) passes(ctx context.Context, c *Change) (bool, error) {
	if c.Filter == nil {
		return true, nil
	}
	ok, err := c.Filter.Match(ctx, [][]schema.Value{c.FilterRow})
	if err != nil {
		return false, err
	}
	if ok[0] && a.tenancy != nil {
		if err := a.noteTenant(c.Table, c.Row); err != nil {
			return false, err
		}
	}
	return ok[0], nil
}

// rowKey returns the key values of row (in a.keyBuf).
func (a *Applier) rowKey(ti *tableInfo, row []schema.Value) []schema.Value {
	a.keyBuf = a.keyBuf[:0]
	for _, k := range ti.key {
		a.keyBuf = append(a.keyBuf, row[k])
	}
	return a.keyBuf
}

func sameValues(a, b []schema.Value) bool {
	for i := range a {
		if a[i].State != b[i].State || !bytes.Equal(a[i].Text, b[i].Text) {
			return false
		}
	}
	return true
}

func (a *Applier) delete(ctx context.Context, c *Change) error {
	ti, err := a.info(c.Table)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if c.Key == nil {
		return fmt.Errorf("delete from %s: no key", ti.label)
	}
	if err := checkKey(ti, OpDelete, c.Key); err != nil {
		return err
	}
	if ti.hasPK {
		a.netDeleteKey(a.netOf(c.Table, ti), c.Key)
		return nil
	}
	return a.deleteKey(ctx, c.Table, ti, OpDelete, c.Key)
}

func (a *Applier) truncate(ctx context.Context, c *Change) error {
	// What came before the TRUNCATE is written before it.
	if err := a.writeNet(ctx); err != nil {
		return err
	}
	var names, labels []string
	var tables []schema.TableName
	for _, t := range c.Tables {
		if t == nil || t.Table == nil {
			return errors.New("truncate: nil table")
		}
		n := tableIdent(t)
		if !slices.Contains(names, n) {
			names = append(names, n)
			labels = append(labels, tableLabel(t))
			tables = append(tables, schema.TableName{Schema: t.Table.Schema, Name: t.Table.Name})
		}
	}
	if len(names) == 0 {
		return nil
	}
	// Foreign keys: their pending checks run first, and a referenced
	// table cannot be truncated alone (ForeignKeys.truncateSQL).
	before, after := a.fkeys.truncateSQL(tables)
	for _, stmt := range before {
		a.batch.ExecParams(stmt, nil, nil, nil, nil)
		a.queued = append(a.queued, queued{what: "foreign keys before a truncate: " + firstWords(stmt)})
	}
	a.batch.ExecParams("TRUNCATE TABLE "+strings.Join(names, ", "), nil, nil, nil, nil)
	a.queued = append(a.queued, queued{op: OpTruncate, table: strings.Join(labels, ", ")})
	for _, stmt := range after {
		a.batch.ExecParams(stmt, nil, nil, nil, nil)
		a.queued = append(a.queued, queued{what: "foreign keys after a truncate: " + firstWords(stmt)})
	}
	return nil
}

// upsertSQL: INSERT of every column, updating the non-key columns of an
// existing row with the same key (or doing nothing when every column is
// in the key). A table without a key gets a plain INSERT.
func (ti *tableInfo) upsertSQL() string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(ti.name)
	b.WriteString(" (")
	b.WriteString(strings.Join(ti.cols, ", "))
	b.WriteString(") VALUES (")
	for i := range ti.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i+1))
	}
	b.WriteString(")")
	if !ti.hasPK {
		return b.String()
	}
	return b.String() + ti.onConflictSQL()
}

// onConflictSQL is the ON CONFLICT clause of an upsert: on the key,
// updating the other columns (or doing nothing when every column is in
// the key).
func (ti *tableInfo) onConflictSQL() string {
	var b strings.Builder
	b.WriteString(" ON CONFLICT (")
	for j, k := range ti.key {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString(ti.cols[k])
	}
	b.WriteString(") DO ")
	var set []string
	for i, c := range ti.cols {
		if !ti.isKey[i] {
			set = append(set, c+" = EXCLUDED."+c)
		}
	}
	if len(set) == 0 {
		b.WriteString("NOTHING")
	} else {
		b.WriteString("UPDATE SET " + strings.Join(set, ", "))
	}
	return b.String()
}

// where is the condition matching the key whose values are the
// parameters from $first on: equality on the key columns, or, for a table
// without a key, the first row equal in every column (NULLs included).
func (ti *tableInfo) where(first int) string {
	var b strings.Builder
	if ti.hasPK {
		for j, k := range ti.key {
			if j > 0 {
				b.WriteString(" AND ")
			}
			b.WriteString(ti.cols[k] + " = $" + strconv.Itoa(first+j))
		}
		return b.String()
	}
	b.WriteString("ctid = (SELECT ctid FROM ")
	b.WriteString(ti.name)
	b.WriteString(" WHERE ")
	for j, k := range ti.key {
		if j > 0 {
			b.WriteString(" AND ")
		}
		p := "$" + strconv.Itoa(first+j)
		if ti.textCmp[k] {
			b.WriteString(ti.cols[k] + "::text IS NOT DISTINCT FROM " + p + "::text")
		} else {
			b.WriteString(ti.cols[k] + " IS NOT DISTINCT FROM " + p)
		}
	}
	b.WriteString(" LIMIT 1)")
	return b.String()
}

func (ti *tableInfo) deleteSQL() string {
	return "DELETE FROM " + ti.name + " WHERE " + ti.where(1)
}

// updateSQL: UPDATE of the columns mask marks, by key.
func (ti *tableInfo) updateSQL(mask string) string {
	var b strings.Builder
	b.WriteString("UPDATE ")
	b.WriteString(ti.name)
	b.WriteString(" SET ")
	n := 0
	for i := 0; i < len(mask); i++ {
		if mask[i] == 1 {
			if n > 0 {
				b.WriteString(", ")
			}
			n++
			b.WriteString(ti.cols[i] + " = $" + strconv.Itoa(n))
		}
	}
	b.WriteString(" WHERE ")
	b.WriteString(ti.where(n + 1))
	return b.String()
}
