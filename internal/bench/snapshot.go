package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/cluster"
)

// Snapshot measures the initial copy of the example's tables by pgveil
// (with the example's masking rules), against a raw COPY pipe of the same
// tables, a native subscription's initial sync, and pg_dump | psql.
func Snapshot(ctx context.Context, s *Site, r *Report) error {
	rows := s.TotalRows()
	// Warm the source's caches, so that no subject pays for the first read.
	if _, err := rawPipe(ctx, s.ProdDSN, "", Tables); err != nil {
		return fmt.Errorf("warming up: %w", err)
	}

	// Raw pipe: COPY TO STDOUT into COPY FROM STDIN, table by table.
	rawDSN, err := s.NewTargetDB(ctx, "snap_raw", true)
	if err != nil {
		return err
	}
	mark := s.cpuNow()
	began := time.Now()
	bytes, err := rawPipe(ctx, s.ProdDSN, rawDSN, Tables)
	if err != nil {
		return fmt.Errorf("raw pipe: %w", err)
	}
	raw := Result{Scenario: "snapshot", Subject: "raw COPY pipe", Rows: rows, Bytes: bytes, Seconds: time.Since(began).Seconds(),
		Note: "COPY TO STDOUT | COPY FROM STDIN, one table after the other, no masking"}
	s.cpuSince(mark, &raw)
	r.Add(raw)
	s.Log.Info("snapshot: raw pipe done")
	_ = s.Analytics.DropDB(ctx, "snap_raw")

	// pgveil, with the example's rules, and with every column kept (the
	// pipeline without masking: what masking costs is the difference).
	res, err := snapshotPgveil(ctx, s, "snap_pgveil", false)
	if err != nil {
		return err
	}
	res.Bytes = bytes
	r.Add(res)
	s.Log.Info("snapshot: pgveil done")
	if res, err = snapshotPgveil(ctx, s, "snap_keep", true); err != nil {
		return err
	}
	res.Bytes = bytes
	r.Add(res)

	// Native initial sync, timed from CREATE SUBSCRIPTION.
	n, err := s.NewNative(ctx, "snap_native")
	if err != nil {
		return err
	}
	mark = s.cpuNow()
	began = time.Now()
	if err := n.Subscribe(ctx, true); err != nil {
		return err
	}
	if err := n.WaitSynced(ctx, 30*time.Minute); err != nil {
		return err
	}
	native := Result{Scenario: "snapshot", Subject: "native initial sync", Rows: rows, Bytes: bytes, Seconds: time.Since(began).Seconds(),
		Note: "CREATE SUBSCRIPTION ... WITH (copy_data = true), max_sync_workers_per_subscription = 2, no masking"}
	if err := n.Drop(ctx, s); err != nil {
		return err
	}
	s.cpuSince(mark, &native) // its apply worker's and walsender's CPU too, but they are idle
	r.Add(native)
	_ = s.Analytics.DropDB(ctx, "snap_native")
	s.Log.Info("snapshot: native done")

	// pg_dump | psql into an empty database (schema, data, then indexes).
	dumpDSN, err := s.NewTargetDB(ctx, "snap_dump", false)
	if err != nil {
		return err
	}
	mark = s.cpuNow()
	began = time.Now()
	if err := dumpRestore(ctx, s.ProdDSN, dumpDSN, Tables); err != nil {
		return err
	}
	dump := Result{Scenario: "snapshot", Subject: "pg_dump | psql", Rows: rows, Bytes: bytes, Seconds: time.Since(began).Seconds(),
		Note: "schema, data and indexes, no masking"}
	s.cpuSince(mark, &dump)
	r.Add(dump)
	_ = s.Analytics.DropDB(ctx, "snap_dump")
	s.Log.Info("snapshot: pg_dump done")
	return nil
}

// snapshotPgveil times pgveil from its start to the end of its initial
// copy (its checkpoint in the target).
func snapshotPgveil(ctx context.Context, s *Site, name string, keepAll bool) (Result, error) {
	dsn, err := s.NewTargetDB(ctx, name, false)
	if err != nil {
		return Result{}, err
	}
	defer s.Analytics.DropDB(context.Background(), name)
	cfg, env, err := s.Config(name, dsn)
	if keepAll {
		cfg, env, err = s.KeepConfig(ctx, name, dsn)
	}
	if err != nil {
		return Result{}, err
	}
	tgt, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return Result{}, err
	}
	defer tgt.Close(context.Background())
	mark := s.cpuNow()
	run, err := s.initialCopy(ctx, cfg, env, tgt, name)
	if err != nil {
		return Result{}, err
	}
	if err := s.DropSlot(ctx, name); err != nil {
		return Result{}, err
	}
	var rows int64
	for _, t := range Tables {
		var n int64
		if err := tgt.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			return Result{}, err
		}
		rows += n
	}
	res := Result{Scenario: "snapshot", Subject: "pgveil", Rows: rows, Seconds: run.seconds, PeakRSS: run.rss,
		PgveilCPU: run.cpu,
		Note:      "process start to initial copy committed, masked with examples/saas rules (soft-deleted customers filtered out)"}
	s.cpuSince(mark, &res)
	if keepAll {
		res.Subject, res.Note = "pgveil, every column keep", "the same pipeline with no masking and no row filter: the difference with pgveil is what masking costs"
	}
	return res, nil
}

// rawPipe copies tables from src to dst (or to nowhere when dst is "")
// with COPY, and returns the bytes that went through.
func rawPipe(ctx context.Context, srcDSN, dstDSN string, tables []string) (int64, error) {
	src, err := pgx.Connect(ctx, srcDSN)
	if err != nil {
		return 0, err
	}
	defer src.Close(context.Background())
	var dst *pgx.Conn
	if dstDSN != "" {
		if dst, err = pgx.Connect(ctx, dstDSN); err != nil {
			return 0, err
		}
		defer dst.Close(context.Background())
	}
	var total int64
	for _, t := range tables {
		pr, pw := io.Pipe()
		// Rows arrive one CopyData message each: buffer them, or every row
		// costs a hand-over between the two goroutines.
		bw := bufio.NewWriterSize(pw, 256<<10)
		cw := &countingWriter{w: bw}
		errc := make(chan error, 1)
		go func() {
			_, err := src.PgConn().CopyTo(ctx, cw, "COPY "+t+" TO STDOUT")
			if err == nil {
				err = bw.Flush()
			}
			pw.CloseWithError(err)
			errc <- err
		}()
		if dst != nil {
			if _, err := dst.PgConn().CopyFrom(ctx, pr, "COPY "+t+" FROM STDIN"); err != nil {
				pr.CloseWithError(err)
				<-errc
				return 0, fmt.Errorf("%s: %w", t, err)
			}
		} else if _, err := io.Copy(io.Discard, pr); err != nil {
			<-errc
			return 0, err
		}
		if err := <-errc; err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
		total += cw.n
	}
	return total, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// dumpRestore runs pg_dump of tables from src piped into psql on dst.
func dumpRestore(ctx context.Context, srcDSN, dstDSN string, tables []string) error {
	bin, err := cluster.BinDir()
	if err != nil {
		return err
	}
	args := []string{"--no-owner", "--no-privileges", "-d", srcDSN}
	for _, t := range tables {
		args = append(args, "-t", t)
	}
	dump := exec.CommandContext(ctx, filepath.Join(bin, "pg_dump"), args...)
	restore := exec.CommandContext(ctx, filepath.Join(bin, "psql"), "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", dstDSN)
	pipe, err := dump.StdoutPipe()
	if err != nil {
		return err
	}
	restore.Stdin = pipe
	var dumpErr, restoreErr strings.Builder
	dump.Stderr, restore.Stderr = &dumpErr, &restoreErr
	restore.Stdout = io.Discard
	if err := dump.Start(); err != nil {
		return fmt.Errorf("pg_dump: %w", err)
	}
	if err := restore.Run(); err != nil {
		_ = dump.Wait()
		return fmt.Errorf("psql: %w: %s", err, restoreErr.String())
	}
	if err := dump.Wait(); err != nil {
		return fmt.Errorf("pg_dump: %w: %s", err, dumpErr.String())
	}
	return nil
}

// copyRun is what one pgveil's initial copy cost.
type copyRun struct {
	seconds float64 // process start to the checkpoint written
	rss     int64   // peak RSS, bytes
	cpu     float64 // pgveil's CPU seconds
}

// initialCopy starts pgveil with cfg and env, waits until its initial
// copy into tgt has written the checkpoint of slot name, and stops it.
func (s *Site) initialCopy(ctx context.Context, cfg string, env []string, tgt *pgx.Conn, name string) (copyRun, error) {
	p, err := s.StartPgveil(cfg, env)
	if err != nil {
		return copyRun{}, err
	}
	err = waitUntil(ctx, p, 30*time.Minute, 20*time.Millisecond, "pgveil's initial copy", checkpointWritten(tgt, name))
	run := copyRun{seconds: time.Since(p.Started()).Seconds()}
	run.rss, _ = p.PeakRSS()
	if stopErr := p.Stop(); err == nil && stopErr != nil {
		err = fmt.Errorf("stopping pgveil: %w", stopErr)
	}
	run.cpu = p.CPU().Seconds()
	return run, err
}
