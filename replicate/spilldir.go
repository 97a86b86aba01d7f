package replicate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// spillDir is the directory one pgveil process spills large transactions
// into: SpillDir/pgveil-SLOT.spill, mode 0700, locked while the process
// runs. Spilled transactions are rows as production sent them, unmasked:
// whatever an earlier process left there (it was killed) is removed when
// the next one opens it, and two processes never share one (two instances
// with their own slots share a SpillDir safely; transaction ids repeat
// across servers).
type spillDir struct {
	path    string
	lock    *os.File
	removed int // files left by an earlier process, removed
}

func openSpillDir(base, slot string) (*spillDir, error) {
	if base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "pgveil-"+slot+".spill")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spill directory: %w", err)
	}
	// It may have been made with a wider mode by hand.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spill directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spill directory: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("spill directory %s is in use by another pgveil process with slot %s", dir, slot)
		}
		return nil, fmt.Errorf("spill directory %s: locking: %w", dir, err)
	}
	sd := &spillDir{path: dir, lock: lock}
	entries, err := os.ReadDir(dir)
	if err != nil {
		sd.close()
		return nil, fmt.Errorf("spill directory: %w", err)
	}
	for _, e := range entries {
		if e.Name() == "lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			sd.close()
			return nil, fmt.Errorf("spill directory: removing what an earlier run left: %w", err)
		}
		sd.removed++
	}
	return sd, nil
}

// close releases the directory (its lock file stays, for the next run).
func (s *spillDir) close() { s.lock.Close() }
