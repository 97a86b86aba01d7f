package replicate

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgproto3"

	"pgveil/replicate/pgoutput"
)

// recordedSession is the pgoutput session the stream's unit tests replay
// (stream_replay_test.go): the XLogData payloads ('w' and what follows) of
// a real PostgreSQL 15 walsender, protocol 2 with streaming, each prefixed
// by its length as a 4-byte big-endian integer.
//
// To record it again (after a change of PostgreSQL or of the session
// below):
//
//	PGVEIL_RECORD_PGOUTPUT=1 go test -run TestRecordPgoutput -count=1 ./replicate
const recordedSession = "testdata/pgoutput_v2.bin"

// recordedSQL is the session: every kind of message the streamer handles.
// The source streams transactions over 64 kB (prodCluster's settings).
var recordedSQL = []string{
	// insert; big is stored out of line uncompressed: a TOAST value.
	`INSERT INTO rec VALUES (1, 'ann', (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i)), (2, 'bob', NULL)`,
	// update leaving the TOAST value unchanged ('u' in the new tuple)
	`UPDATE rec SET name = 'ann2' WHERE id = 1`,
	// update of the key: the old key is sent
	`UPDATE rec SET id = 3 WHERE id = 2`,
	`DELETE FROM rec WHERE id = 3`,
	// a transaction over 64 kB, streamed in pieces and committed
	`INSERT INTO rec SELECT i, repeat('x', 60), NULL FROM generate_series(100, 1199) i`,
	// one streamed and rolled back (Stream Abort)
	`BEGIN; INSERT INTO rec SELECT i, repeat('y', 60), NULL FROM generate_series(5000, 6099) i; ROLLBACK`,
	`TRUNCATE rec RESTART IDENTITY`,
	// a schema change: a new Relation message before the next change
	`ALTER TABLE rec ADD COLUMN extra text`,
	`INSERT INTO rec VALUES (9, 'zed', NULL, 'e')`,
}

func TestRecordPgoutput(t *testing.T) {
	if os.Getenv("PGVEIL_RECORD_PGOUTPUT") == "" {
		t.Skip("records " + recordedSession + "; set PGVEIL_RECORD_PGOUTPUT=1 to record it again")
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	dsn := clusters.Source.NewDB(t)
	e := &e2e{t: t}
	var err error
	if e.src, err = testConnect(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	defer e.src.Close(context.Background())
	e.exec(`CREATE TABLE rec (id int PRIMARY KEY, name text, big text);
		ALTER TABLE rec ALTER big SET STORAGE EXTERNAL;
		CREATE PUBLICATION recpub FOR TABLE rec`)
	repl, err := connectReplication(ctx, dsn, "rec")
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(context.Background())
	if _, err := pglogrepl.CreateReplicationSlot(ctx, repl, "rec", "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication}); err != nil {
		t.Fatal(err)
	}
	for _, q := range recordedSQL[:len(recordedSQL)-1] {
		e.exec(q)
	}
	// The last transaction commits after this position.
	var last pglogrepl.LSN
	if err := e.src.QueryRow(ctx, `SELECT pg_current_wal_lsn()`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	e.exec(recordedSQL[len(recordedSQL)-1])
	if err := pglogrepl.StartReplication(ctx, repl, "rec", 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication, PluginArgs: pluginArgs("recpub", 150000)}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var dec sessionDecoder
	for done := false; !done; {
		msg, err := repl.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		if c, ok := dec.decode(t, cd.Data).(*pgoutput.Commit); ok {
			done = c.CommitLSN >= last
		}
		_ = binary.Write(&out, binary.BigEndian, uint32(len(cd.Data)))
		out.Write(cd.Data)
	}
	if err := os.WriteFile(recordedSession, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %d bytes into %s", out.Len(), recordedSession)
}

// sessionDecoder decodes a session's XLogData messages in order, knowing
// from StreamStart and StreamStop which are inside a streamed
// transaction.
type sessionDecoder struct {
	dec      pgoutput.Decoder
	inStream bool
}

// decode decodes one XLogData message ('w' and its header included).
func (d *sessionDecoder) decode(t testing.TB, xlog []byte) pgoutput.Message {
	t.Helper()
	x, err := pglogrepl.ParseXLogData(xlog[1:])
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.dec.Decode(x.WALData, d.inStream)
	if err != nil {
		t.Fatal(err)
	}
	switch m.(type) {
	case *pgoutput.StreamStart:
		d.inStream = true
	case *pgoutput.StreamStop:
		d.inStream = false
	}
	return m
}

// readRecorded returns the recorded session's XLogData payloads.
func readRecorded(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile(recordedSession)
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	r := bytes.NewReader(b)
	for {
		var n uint32
		if err := binary.Read(r, binary.BigEndian, &n); err == io.EOF {
			return msgs
		} else if err != nil {
			t.Fatal(err)
		}
		m := make([]byte, n)
		if _, err := io.ReadFull(r, m); err != nil {
			t.Fatal(fmt.Errorf("%s: %w", recordedSession, err))
		}
		msgs = append(msgs, m)
	}
}
