package replicate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// lagObserver records what the lag figures are worked out from.
type lagObserver struct {
	roundCounter
	mu          sync.Mutex
	checkpoints []pglogrepl.LSN
	commits     int
	walEnds     []pglogrepl.LSN // SourceWALEnd readings
	keepalives  []pglogrepl.LSN
	data        []pglogrepl.LSN
}

func (o *lagObserver) Checkpoint(lsn pglogrepl.LSN, _ time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.checkpoints = append(o.checkpoints, lsn)
}

func (o *lagObserver) TargetCommit(int, int64, time.Duration, pglogrepl.LSN, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.commits++
}

func (o *lagObserver) SourceWALEnd(lsn pglogrepl.LSN) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.walEnds = append(o.walEnds, lsn)
}

func (o *lagObserver) SourceAlive(walEnd pglogrepl.LSN, keepalive bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if keepalive {
		o.keepalives = append(o.keepalives, walEnd)
	} else {
		o.data = append(o.data, walEnd)
	}
}

// A restart with a backlog (a big UPDATE made while pgveil was down):
// from the stream's first moment the observer knows the server's WAL end
// past the backlog, so pgveil_lag_bytes is the backlog and a keepalive
// the walsender sends while it decodes it is not taken for caught up; the
// data messages' WAL ends are real positions, never 0. The initial copy's
// checkpoint is reported before any streamed commit.
func TestStreamLagUnderBacklog(t *testing.T) {
	e := newE2E(t, `CREATE TABLE big (id int PRIMARY KEY, v text);
		INSERT INTO big SELECT i, md5(i::text) FROM generate_series(1, 20000) i;`,
		"  big:\n    columns: {id: keep, v: hash}\n")
	obs := &lagObserver{}
	e.startWith(obs)
	e.sync()
	obs.mu.Lock()
	if len(obs.checkpoints) == 0 || obs.checkpoints[0] == 0 {
		t.Errorf("initial copy's checkpoint reported as %v", obs.checkpoints)
	}
	obs.mu.Unlock()
	e.stop()
	e.waitSlotInactive()

	// The test clusters run with synchronous_commit off: without it here,
	// the flush position read next may still stand at the first run's
	// last commit, which is where the restart's checkpoint is.
	e.exec(`SET synchronous_commit = on`)
	e.exec(`UPDATE big SET v = md5(v)`)
	var backlogEnd pglogrepl.LSN
	if err := e.src.QueryRow(context.Background(), `SELECT pg_current_wal_flush_lsn()`).Scan(&backlogEnd); err != nil {
		t.Fatal(err)
	}
	obs2 := &lagObserver{}
	e.startWith(obs2)
	e.sync()
	obs2.mu.Lock()
	defer obs2.mu.Unlock()
	if len(obs2.walEnds) == 0 || obs2.walEnds[0] < backlogEnd {
		t.Errorf("first WAL end read %v, want at least the backlog's end %s", obs2.walEnds, backlogEnd)
	}
	if len(obs2.checkpoints) == 0 || obs2.checkpoints[0] >= backlogEnd {
		t.Fatalf("checkpoint at restart %v", obs2.checkpoints)
	}
	for _, d := range obs2.data {
		if d == 0 || d < obs2.checkpoints[0] {
			t.Errorf("a data message reported WAL end %s (checkpoint %s)", d, obs2.checkpoints[0])
			break
		}
	}
	behind := 0
	for _, k := range obs2.keepalives {
		if k < backlogEnd {
			behind++
		}
	}
	t.Logf("%d WAL end readings, %d keepalives (%d behind the backlog's end), %d data messages",
		len(obs2.walEnds), len(obs2.keepalives), behind, len(obs2.data))
}
