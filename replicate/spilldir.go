package replicate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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

// openPrivateDir opens path, which must be a directory (not a link) owned
// by pgveil's effective uid and closed to group and others; tighten makes
// one pgveil owns 0700 instead of refusing it. A link could lead pgveil
// to a directory of someone else's choosing; a directory another user owns
// or can use is one they can read. After the check the directory is used
// through the os.Root, not its path, so it cannot be swapped meanwhile.
func openPrivateDir(path string, tighten bool) (*os.Root, error) {
	const fix = "remove it or pass --spill-dir a private directory"
	lst, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("spill directory: %w", err)
	}
	if lst.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("spill directory %s is a symbolic link, which pgveil does not follow (it could lead to files of someone else's choosing): %s", path, fix)
	}
	if !lst.IsDir() {
		return nil, fmt.Errorf("spill directory %s is not a directory: %s", path, fix)
	}
	// os.OpenRoot follows a link, so what it opened is compared with what
	// Lstat saw: if they are the same directory, it is that directory, in
	// hand, whatever happens to the path from now on.
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("spill directory: %w", err)
	}
	st, err := root.Stat(".")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("spill directory %s: %w", path, err)
	}
	if !os.SameFile(lst, st) {
		root.Close()
		return nil, fmt.Errorf("spill directory %s was replaced while pgveil opened it: something else is changing it; pass --spill-dir a private directory", path)
	}
	if uid, me := owner(st), os.Geteuid(); uid != me {
		root.Close()
		return nil, fmt.Errorf("spill directory %s is owned by uid %d, not pgveil's uid %d: %s", path, uid, me, fix)
	}
	perm := st.Mode().Perm()
	switch {
	case perm&0o077 != 0 && !tighten:
		root.Close()
		return nil, fmt.Errorf("spill directory %s has mode %04o, open to group or others: chmod 0700 it, or pass --spill-dir a private directory", path, perm)
	case perm != 0o700 && tighten:
		if err := root.Chmod(".", 0o700); err != nil {
			root.Close()
			return nil, fmt.Errorf("spill directory %s has mode %04o and cannot be made 0700: %w; %s", path, perm, err, fix)
		}
	}
	return root, nil
}

// notOurs says why fi is not a file pgveil could have made, or "" if it
// could be: a regular file of pgveil's effective uid with a single link.
// Hard links are refused because writing to one writes to every name it
// has, some of which may be readable by others.
func notOurs(fi fs.FileInfo) string {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "is a symbolic link"
	case !fi.Mode().IsRegular():
		return "is not a regular file"
	}
	if uid, me := owner(fi), os.Geteuid(); uid != me {
		return fmt.Sprintf("is owned by uid %d, not pgveil's uid %d", uid, me)
	}
	if n := links(fi); n != 1 {
		return fmt.Sprintf("has %d hard links", n)
	}
	return ""
}

func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

func links(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}

// spillName is the name of the spill file of transaction xid.
func spillName(xid uint32) string { return "xact-" + strconv.FormatUint(uint64(xid), 10) + ".spill" }
