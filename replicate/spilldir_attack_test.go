package replicate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The spill directory may be where other users can write (issue 17,
// finding 5): what they put there is refused, never trusted, followed or
// deleted. Files of "another user" belong to uid 65534 (see chownNobody).

// TestSpillDirOtherOwner: a directory another user made (and can read, or
// chmod back open) is refused, and left as it was.
func TestSpillDirOtherOwner(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "pgveil-one.spill")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(dir, "xact-1.spill")
	if err := os.WriteFile(planted, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	chownNobody(t, dir, planted)
	sd, err := openSpillDir(base, "one")
	if err == nil {
		sd.close()
	}
	want := "spill directory " + dir + " is owned by uid 65534, not pgveil's uid"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "pass --spill-dir") {
		t.Errorf("another user's directory: %v, want %q", err, want)
	}
	if _, err := os.Lstat(planted); err != nil {
		t.Errorf("their file was touched: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "lock")); err == nil {
		t.Error("a lock file was made in their directory")
	}
}

// TestSpillDirSymlink: the directory being a link (to a directory of the
// attacker's choosing) is refused; the target is not chmodded, locked or
// emptied.
func TestSpillDirSymlink(t *testing.T) {
	victim := t.TempDir()
	if err := os.Chmod(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	precious := filepath.Join(victim, "xact-1.spill") // even under a spill name
	if err := os.WriteFile(precious, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	if err := os.Symlink(victim, filepath.Join(base, "pgveil-one.spill")); err != nil {
		t.Fatal(err)
	}
	sd, err := openSpillDir(base, "one")
	if err == nil {
		sd.close()
	}
	if err == nil || !strings.Contains(err.Error(), "is a symbolic link") || !strings.Contains(err.Error(), "remove it or pass --spill-dir") {
		t.Errorf("linked directory: %v", err)
	}
	if got := readFile(t, precious); got != "precious" {
		t.Errorf("the link's target was emptied: %q", got)
	}
	if st, err := os.Stat(victim); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("the link's target was chmodded: %v, %v", st.Mode(), err)
	}
	if _, err := os.Lstat(filepath.Join(victim, "lock")); err == nil {
		t.Error("a lock file was made in the link's target")
	}
}

// TestSpillDirOpenMode: a directory of pgveil's that group or others could
// use is tightened to 0700 (Kubernetes' fsGroup does that to volumes on
// every start); what others put in it under a spill name while it was open
// is not trusted: pgveil refuses to start and leaves it for a person.
func TestSpillDirOpenMode(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "pgveil-one.spill")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, os.ModeSetgid|0o777); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(dir, "xact-5.spill")
	if err := os.WriteFile(planted, []byte("theirs"), 0o666); err != nil {
		t.Fatal(err)
	}
	chownNobody(t, planted)
	sd, err := openSpillDir(base, "one")
	if err == nil {
		sd.close()
	}
	if err == nil || !strings.Contains(err.Error(), "holds xact-5.spill, which is owned by uid 65534") || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("another user's file under a spill name: %v", err)
	}
	if got := readFile(t, planted); got != "theirs" {
		t.Errorf("their file was changed: %q", got)
	}
	if st, err := os.Lstat(dir); err != nil || st.Mode()&os.ModePerm != 0o700 || st.Mode()&os.ModeSetgid != 0 {
		t.Errorf("not tightened: %v, %v", st.Mode(), err)
	}
	// Once a person removed it, pgveil starts.
	if err := os.Remove(planted); err != nil {
		t.Fatal(err)
	}
	sd, err = openSpillDir(base, "one")
	if err != nil {
		t.Fatal(err)
	}
	sd.close()
}

// TestSpillDirCleanupDoesNotFollow: cleanup removes only regular files of
// pgveil's under spill names. Links are not followed (nor removed), no
// directory is descended into, and a link or hard link under a spill name
// (which newSpill would refuse mid-stream) stops pgveil at start instead.
func TestSpillDirCleanupDoesNotFollow(t *testing.T) {
	victimDir := t.TempDir()
	victim := filepath.Join(victimDir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := func(t *testing.T) (base, dir string) {
		base = t.TempDir()
		sd, err := openSpillDir(base, "one")
		if err != nil {
			t.Fatal(err)
		}
		sd.close()
		return base, sd.path
	}

	t.Run("other names are left alone", func(t *testing.T) {
		base, dir := fresh(t)
		mustDo(t, os.Symlink(victim, filepath.Join(dir, "to-victim")))
		mustDo(t, os.Symlink(victimDir, filepath.Join(dir, "to-victim-dir")))
		mustDo(t, os.Mkdir(filepath.Join(dir, "sub"), 0o700))
		mustDo(t, os.WriteFile(filepath.Join(dir, "sub", "xact-2.spill"), []byte("inside"), 0o600))
		mustDo(t, os.WriteFile(filepath.Join(dir, "xact-7.spill"), []byte("raw row"), 0o600)) // a left-over
		sd, err := openSpillDir(base, "one")
		if err != nil {
			t.Fatal(err)
		}
		defer sd.close()
		if sd.removed != 1 {
			t.Errorf("removed %d, want the one left-over", sd.removed)
		}
		if _, err := os.Lstat(filepath.Join(dir, "xact-7.spill")); !os.IsNotExist(err) {
			t.Errorf("left-over not removed: %v", err)
		}
		for _, name := range []string{"to-victim", "to-victim-dir", "sub/xact-2.spill"} {
			if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if got := readFile(t, victim); got != "precious" {
			t.Errorf("victim changed: %q", got)
		}
	})

	for _, tc := range []struct {
		name, want string
		plant      func(t *testing.T, dir string)
	}{
		{"link under a spill name", "holds xact-3.spill, which is a symbolic link", func(t *testing.T, dir string) {
			mustDo(t, os.Symlink(victim, filepath.Join(dir, "xact-3.spill")))
		}},
		{"hard link under a spill name", "holds xact-4.spill, which has 2 hard links", func(t *testing.T, dir string) {
			mustDo(t, os.Link(victim, filepath.Join(dir, "xact-4.spill")))
		}},
		{"directory under a spill name", "holds xact-6.spill, which is not a regular file", func(t *testing.T, dir string) {
			mustDo(t, os.Mkdir(filepath.Join(dir, "xact-6.spill"), 0o700))
			mustDo(t, os.Symlink(victim, filepath.Join(dir, "xact-6.spill", "xact-1.spill")))
		}},
		{"link as the lock file", "lock file " + "DIR/lock is a symbolic link", func(t *testing.T, dir string) {
			mustDo(t, os.Remove(filepath.Join(dir, "lock")))
			mustDo(t, os.Symlink(victim, filepath.Join(dir, "lock")))
		}},
		{"another user's lock file", "lock file DIR/lock is owned by uid 65534", func(t *testing.T, dir string) {
			chownNobody(t, filepath.Join(dir, "lock"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, dir := fresh(t)
			tc.plant(t, dir)
			var before []string
			filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { before = append(before, p); return nil })
			sd, err := openSpillDir(base, "one")
			if err == nil {
				sd.close()
			}
			want := strings.ReplaceAll(tc.want, "DIR", dir)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want %q", err, want)
			}
			var after []string
			filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { after = append(after, p); return nil })
			if strings.Join(before, "\n") != strings.Join(after, "\n") {
				t.Errorf("the directory changed:\n%s\nnow\n%s", before, after)
			}
			if got := readFile(t, victim); got != "precious" {
				t.Errorf("victim changed: %q", got)
			}
		})
	}
}

// TestSpillDirDefaultPrivate: without --spill-dir, spills do not go to a
// shared temporary directory (where another user could pre-create
// pgveil's directory) but to systemd's StateDirectory, a TMPDIR only
// pgveil's user can write (the Docker image's), or the user's state
// directory.
func TestSpillDirDefaultPrivate(t *testing.T) {
	shared := t.TempDir()
	mustDo(t, os.Chmod(shared, os.ModeSticky|0o777)) // like /tmp
	home := t.TempDir()
	private := privateDir(t)
	for _, tc := range []struct {
		name               string
		state, tmpdir, xdg string
		want               string
	}{
		{"shared TMPDIR", "", shared, "", filepath.Join(home, ".local/state/pgveil")},
		{"shared TMPDIR, XDG_STATE_HOME", "", shared, filepath.Join(home, "xdg"), filepath.Join(home, "xdg/pgveil")},
		{"systemd StateDirectory", private, shared, "", private},
		{"private TMPDIR", "", private, "", private},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STATE_DIRECTORY", tc.state)
			t.Setenv("TMPDIR", tc.tmpdir)
			t.Setenv("XDG_STATE_HOME", tc.xdg)
			t.Setenv("HOME", home)
			sd, err := openSpillDir("", "one")
			if err != nil {
				t.Fatal(err)
			}
			sd.close()
			defer os.RemoveAll(sd.path)
			if want := filepath.Join(tc.want, "pgveil-one.spill"); sd.path != want {
				t.Errorf("default spill directory %s, want %s", sd.path, want)
			}
			if st, err := os.Lstat(sd.path); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("%s: %v, %v", sd.path, st.Mode(), err)
			}
		})
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
