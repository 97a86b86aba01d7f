package replicate

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// privateDir is a directory as openSpillDir leaves it: pgveil's, 0700.
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// nobody is the uid the tests give files "another user" made; it needs
// root (pgveil's tests run as root in CI), as root bypasses permissions:
// what is checked is ownership and mode, not a failed access.
const nobody = 65534

func chownNobody(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Lchown(p, nobody, nobody); err != nil {
			t.Skipf("needs root to make files of another user: %v", err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSpillReplayAndSubAbort(t *testing.T) {
	s, err := newSpill(privateDir(t), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	add := func(xid uint32, m string) {
		if err := s.add(xid, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	add(100, "a")
	add(101, "b") // subxact 101
	add(101, "c")
	add(102, "d") // subxact 102, after 101
	add(100, "e")
	if err := s.abortSub(102); err != nil { // drops d and e
		t.Fatal(err)
	}
	add(100, "f")
	if err := s.abortSub(999); err != nil { // unknown: nothing
		t.Fatal(err)
	}
	var got []string
	if err := s.replay(func(m []byte) error { got = append(got, string(m)); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "") != "abcf" {
		t.Errorf("replayed %q", got)
	}
	if err := s.abortSub(101); err != nil {
		t.Fatal(err)
	}
	got = nil
	s.replay(func(m []byte) error { got = append(got, string(m)); return nil })
	if strings.Join(got, "") != "a" {
		t.Errorf("after aborting 101: %q", got)
	}
}

func TestSpillLarge(t *testing.T) {
	s, err := newSpill(privateDir(t), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	big := strings.Repeat("x", 1<<20)
	for i := range 50 {
		if err := s.add(7, []byte(fmt.Sprintf("%d:%s", i, big))); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	err = s.replay(func(m []byte) error {
		if !strings.HasPrefix(string(m), fmt.Sprintf("%d:", n)) || len(m) < 1<<20 {
			return fmt.Errorf("message %d wrong", n)
		}
		n++
		return nil
	})
	if err != nil || n != 50 {
		t.Fatalf("replayed %d: %v", n, err)
	}
}

// TestSpillFileNotWrittenThrough: a name that already exists where a spill
// file goes is never opened and written to. A link (to a file of the
// victim's) or a hard link (another user's name for the same bytes) is
// refused, with the victim unchanged and no row readable through it; a
// left-over of pgveil's own is replaced by a new file, not truncated, so a
// descriptor on the old one sees none of the new rows.
func TestSpillFileNotWrittenThrough(t *testing.T) {
	const row = "raw row: alice@example.com"
	elsewhere := t.TempDir()
	victim := filepath.Join(elsewhere, "victim")
	if err := os.WriteFile(victim, []byte("the victim's"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("symbolic link", func(t *testing.T) {
		dir := privateDir(t)
		if err := os.Symlink(victim, filepath.Join(dir, "xact-9.spill")); err != nil {
			t.Fatal(err)
		}
		s, err := newSpill(dir, 9)
		if err == nil {
			s.add(9, []byte(row))
			s.replay(func([]byte) error { return nil }) // flushes
			s.close()
		}
		if err == nil || !strings.Contains(err.Error(), "is a symbolic link") || !strings.Contains(err.Error(), "remove it") {
			t.Errorf("newSpill over a link: %v", err)
		}
		if got := readFile(t, victim); got != "the victim's" {
			t.Errorf("written through the link: the victim now holds %q", got)
		}
	})

	t.Run("hard link of another user", func(t *testing.T) {
		dir := privateDir(t)
		// Another user's file, and their second name for it inside the
		// spill directory (made while it was open, say).
		theirs := filepath.Join(elsewhere, "theirs")
		if err := os.WriteFile(theirs, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		chownNobody(t, theirs)
		if err := os.Link(theirs, filepath.Join(dir, "xact-10.spill")); err != nil {
			t.Fatal(err)
		}
		s, err := newSpill(dir, 10)
		if err == nil {
			s.add(10, []byte(row))
			s.replay(func([]byte) error { return nil })
			defer s.close()
		}
		if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("newSpill over another user's hard link: %v", err)
		}
		if got := readFile(t, theirs); got != "" {
			t.Errorf("rows readable through the other name: %q", got)
		}
	})

	t.Run("hard link of ours", func(t *testing.T) {
		dir := privateDir(t)
		other := filepath.Join(elsewhere, "second-name")
		if err := os.WriteFile(other, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(other, filepath.Join(dir, "xact-11.spill")); err != nil {
			t.Fatal(err)
		}
		s, err := newSpill(dir, 11)
		if err == nil {
			s.add(11, []byte(row))
			s.replay(func([]byte) error { return nil })
			defer s.close()
		}
		if err == nil || !strings.Contains(err.Error(), "has 2 hard links") {
			t.Errorf("newSpill over a hard link: %v", err)
		}
		if got := readFile(t, other); got != "" {
			t.Errorf("rows readable through the other name: %q", got)
		}
	})

	t.Run("left-over of ours", func(t *testing.T) {
		dir := privateDir(t)
		left := filepath.Join(dir, "xact-12.spill")
		if err := os.WriteFile(left, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		old, err := os.Open(left) // a reader of the old file
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		s, err := newSpill(dir, 12)
		if err != nil {
			t.Fatalf("a left-over of pgveil's own is replaced: %v", err)
		}
		defer s.close()
		if err := s.add(12, []byte(row)); err != nil {
			t.Fatal(err)
		}
		s.replay(func([]byte) error { return nil })
		if b, _ := io.ReadAll(old); strings.Contains(string(b), "alice") {
			t.Errorf("the old file was reused: its reader sees %q", b)
		}
		st, err := os.Lstat(left)
		if err != nil || st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Nlink != 1 {
			t.Errorf("new spill file: %v, %v", st.Mode(), err)
		}
	})
}

// TestSpillFileDirChecked: newSpill, which knows the directory only by its
// path, refuses one that is not private any more (another owner, open
// mode, replaced by a link), instead of creating raw rows in it.
func TestSpillFileDirChecked(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		make       func(t *testing.T) string
	}{
		{"another owner", "owned by uid 65534", func(t *testing.T) string {
			d := privateDir(t)
			chownNobody(t, d)
			return d
		}},
		{"open to others", "mode 0777", func(t *testing.T) string {
			d := privateDir(t)
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
			return d
		}},
		{"symbolic link", "symbolic link", func(t *testing.T) string {
			link := filepath.Join(t.TempDir(), "link")
			if err := os.Symlink(privateDir(t), link); err != nil {
				t.Fatal(err)
			}
			return link
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.make(t)
			s, err := newSpill(dir, 5)
			if err == nil {
				s.close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("newSpill in %s: %v, want %q", tc.name, err, tc.want)
			}
		})
	}
}
