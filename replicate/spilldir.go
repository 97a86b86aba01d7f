package replicate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// spillDir is the directory one pgveil process spills large transactions
// into: SpillDir/pgveil-SLOT.spill, mode 0700, locked while the process
// runs. Spilled transactions are rows as production sent them, unmasked:
// whatever an earlier process left there (it was killed) is removed when
// the next one opens it, and two processes never share one (two instances
// with their own slots share a SpillDir safely; transaction ids repeat
// across servers).
//
// The directory may sit in a place other users can write (a shared TMPDIR,
// a --spill-dir someone else made), so nothing found there is trusted:
//   - the directory itself must be a real directory, not a symbolic link,
//     owned by pgveil's effective uid. A link could point pgveil at a
//     directory of someone else's choosing, where cleanup would delete
//     files; a directory another user owns is one they can read, or chmod
//     back open, whatever pgveil does to it. Either is refused, not fixed.
//   - it must be closed to group and others (0700). One pgveil owns is
//     tightened to 0700 (a hand-made 0755, or Kubernetes' fsGroup adding
//     g+rwx to a volume's files): only its owner or root can open it again,
//     and what others may have put in it meanwhile is not trusted
//     (removeLeftovers, newSpill).
//   - after that check, everything is done through an os.Root opened on
//     that very directory (compared with the Lstat by os.SameFile), not by
//     path, so swapping the directory or a parent for a link meanwhile
//     changes nothing, and no name inside it can lead outside it. newSpill,
//     which is given the directory by path, checks it again the same way.
//
// The parent chain (SpillDir and above) is not checked: with the last
// component checked this way and used as an open directory, another user
// who can write a parent can at most make pgveil refuse to start (by
// putting their own directory or a link where pgveil's should be), not
// read, redirect or delete anything. The default SpillDir avoids even that
// by being private (defaultSpillBase).
type spillDir struct {
	path    string
	lock    *os.File
	removed int // files left by an earlier process, removed
}

func openSpillDir(base, slot string) (*spillDir, error) {
	var skipped string // why the default is not one of the earlier candidates
	if base == "" {
		base, skipped = defaultSpillBase()
		if base == "" {
			return nil, fmt.Errorf("spill directory: no --spill-dir given, and no private default: %s; pass --spill-dir a directory only pgveil's user can write", skipped)
		}
	}
	// The base is the operator's to choose (see above), so it may be
	// reached through links; only pgveil's own directory in it is checked.
	if err := os.MkdirAll(base, 0o700); err != nil {
		if skipped != "" {
			err = fmt.Errorf("%w (%s)", err, skipped)
		}
		return nil, fmt.Errorf("spill directory: %w: pass --spill-dir a directory pgveil's user can write", err)
	}
	dir := filepath.Join(base, "pgveil-"+slot+".spill")
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("spill directory: %w: pass --spill-dir a directory pgveil's user can write", err)
	}
	root, err := openPrivateDir(dir, true)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	lock, err := openLock(root, dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("spill directory %s is in use by another pgveil process with slot %s", dir, slot)
		}
		return nil, fmt.Errorf("spill directory %s: locking: %w", dir, err)
	}
	sd := &spillDir{path: dir, lock: lock}
	if err := sd.removeLeftovers(root); err != nil {
		sd.close()
		return nil, err
	}
	return sd, nil
}

// removeLeftovers removes the spill files a killed process left. Only
// names pgveil gives spill files are touched, and only when they are what
// pgveil makes: a regular file of its uid with one link. Anything else
// under such a name was put there by someone else (while the directory was
// open, or by root): it is neither deleted nor, later, written through, and
// pgveil refuses to start until a person has looked. Other names are left
// as they are; nothing is followed and no directory is descended into.
func (s *spillDir) removeLeftovers(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("spill directory %s: %w", s.path, err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("spill directory %s: %w", s.path, err)
	}
	for _, e := range entries {
		if !isSpillName(e.Name()) {
			continue
		}
		fi, err := root.Lstat(e.Name())
		if err != nil {
			return fmt.Errorf("spill directory %s: %w", s.path, err)
		}
		if why := notOurs(fi); why != "" {
			return fmt.Errorf("spill directory %s holds %s, which %s: pgveil never makes such a file, so it neither deletes it nor writes through it; find out who put it there, remove it, and start pgveil again", s.path, e.Name(), why)
		}
		if err := root.Remove(e.Name()); err != nil {
			return fmt.Errorf("spill directory %s: removing what an earlier run left: %w", s.path, err)
		}
		s.removed++
	}
	return nil
}

// close releases the directory (its lock file stays, for the next run).
func (s *spillDir) close() { s.lock.Close() }

// openPrivateDir opens path, which must be a directory (not a link) owned
// by pgveil's effective uid and closed to group and others; tighten makes
// one pgveil owns 0700 instead of refusing it. See spillDir for why.
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

// openLock opens (or creates) the lock file of the directory. It is
// opened again by every run, so it must be a file pgveil made: not a link
// (os.Root follows links inside the root even with O_NOFOLLOW, hence the
// Lstat first and the comparison after), not another user's, not a hard
// link to something else.
func openLock(root *os.Root, dir string) (*os.File, error) {
	name := filepath.Join(dir, "lock")
	before, err := root.Lstat("lock")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("spill directory: %w", err)
	}
	if err == nil {
		if why := notOurs(before); why != "" {
			return nil, fmt.Errorf("spill directory lock file %s %s, which pgveil never makes: find out who put it there, remove it, and start pgveil again", name, why)
		}
	}
	flags := os.O_RDWR | syscall.O_NOFOLLOW
	if before == nil {
		flags |= os.O_CREATE | os.O_EXCL
	}
	lock, err := root.OpenFile("lock", flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spill directory: %w", err)
	}
	st, err := lock.Stat()
	if err == nil && before != nil && !os.SameFile(before, st) {
		err = fmt.Errorf("spill directory lock file %s was replaced while pgveil opened it", name)
	}
	if err == nil {
		if why := notOurs(st); why != "" {
			err = fmt.Errorf("spill directory lock file %s %s, which pgveil never makes: find out who put it there, remove it, and start pgveil again", name, why)
		}
	}
	if err != nil {
		lock.Close()
		return nil, err
	}
	return lock, nil
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

// spillName is the name of the spill file of transaction xid; isSpillName
// recognises it, so that cleanup touches nothing else.
func spillName(xid uint32) string { return "xact-" + strconv.FormatUint(uint64(xid), 10) + ".spill" }

func isSpillName(name string) bool {
	digits, ok := strings.CutPrefix(name, "xact-")
	if !ok {
		return false
	}
	if digits, ok = strings.CutSuffix(digits, ".spill"); !ok {
		return false
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	return err == nil && spillName(uint32(n)) == name
}

// defaultSpillBase is SpillDir when none is given: a place only pgveil's
// user can write, never the shared /tmp that os.TempDir falls back to
// (another user could pre-create pgveil's directory there and stop it from
// starting). In order:
//   - $STATE_DIRECTORY: systemd sets it from StateDirectory=
//     (examples/deploy/pgveil.service: /var/lib/pgveil, mode 0700);
//   - $TMPDIR, if pgveil's user owns it and no one else can write it: the
//     Docker image sets it to /var/lib/pgveil, its volume; per-user
//     TMPDIRs (pam_tmpdir, macOS) qualify too;
//   - $XDG_STATE_HOME/pgveil, else ~/.local/state/pgveil (created 0700).
//
// It returns the directory and why earlier candidates were passed over
// (for an error if it cannot be created), or "" and why there is none.
func defaultSpillBase() (string, string) {
	var skipped []string
	state, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	for _, c := range []struct{ env, dir string }{{"STATE_DIRECTORY", state}, {"TMPDIR", os.Getenv("TMPDIR")}} {
		if c.dir == "" {
			continue
		}
		why := privateBase(c.dir)
		if why == "" {
			return c.dir, ""
		}
		skipped = append(skipped, fmt.Sprintf("$%s (%s) %s", c.env, c.dir, why))
	}
	if x := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "pgveil"), strings.Join(skipped, ", ")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "/" || !filepath.IsAbs(home) {
		skipped = append(skipped, "there is no home directory for ~/.local/state/pgveil")
		return "", strings.Join(skipped, ", ")
	}
	return filepath.Join(home, ".local", "state", "pgveil"), strings.Join(skipped, ", ")
}

// privateBase says why dir cannot be the default SpillDir, or "".
func privateBase(dir string) string {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return "cannot be used: " + err.Error()
	case !fi.IsDir():
		return "is not a directory"
	case owner(fi) != os.Geteuid():
		return fmt.Sprintf("is owned by uid %d, not pgveil's uid %d", owner(fi), os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Sprintf("can be written by others (mode %04o)", fi.Mode().Perm())
	}
	return ""
}
