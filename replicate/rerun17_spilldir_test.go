package replicate

// A rerun of issue 17, finding 5 (the spill directory), by someone who did
// not write the fix: the attacks are made by a real other local user (a
// shell running as uid 65534), not by files chowned to it, in a shared
// temporary directory like /tmp (this machine has fs.protected_symlinks=0,
// the setting the finding needs for its worst case).

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// asNobody runs script with /bin/sh as uid and gid 65534 (another local
// user), with the environment variables given, and returns its output and
// exit error.
func asNobody(t *testing.T, script string, env ...string) (string, error) {
	t.Helper()
	cmd := nobodyShell(t, script, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func nobodyShell(t *testing.T, script string, env ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run commands as another user")
	}
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "LC_ALL=C"}, env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	return cmd
}

// sharedTmp is a directory like /tmp (root's, mode mode: os.ModeSticky|0777,
// or 0777 without the sticky bit), that the other user can reach.
func sharedTmp(t *testing.T, mode os.FileMode) string {
	t.Helper()
	top, err := os.MkdirTemp("", "rerun17-")
	mustDo(t, err)
	t.Cleanup(func() { os.RemoveAll(top) })
	mustDo(t, os.Chmod(top, 0o755))
	dir := filepath.Join(top, "tmp")
	mustDo(t, os.Mkdir(dir, 0o700))
	mustDo(t, os.Chmod(dir, mode))
	if st, err := os.Stat(dir); err != nil || st.Mode()&(os.ModeSticky|os.ModePerm) != mode {
		t.Fatalf("shared directory: %v, want %v (%v)", st.Mode(), mode, err)
	}
	return dir
}

// names lists a directory.
func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	mustDo(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

const rerunCanary = "raw-row-CANARY-7f3a"

// TestRerun17SpillDirPlantedByAnotherUser: in a shared /tmp, another user
// makes pgveil's directory first (open to all, with a file in it), or puts
// a link there to a directory of their choosing (another of pgveil's
// too). pgveil refuses to start, and changes nothing: no chmod, no
// cleanup, no lock file, in their directory or the link's target.
func TestRerun17SpillDirPlantedByAnotherUser(t *testing.T) {
	shared := sharedTmp(t, os.ModeSticky|0o777)
	env := "S=" + shared

	// Their own directory, open to all.
	if out, err := asNobody(t, `mkdir -m 0777 "$S/pgveil-one.spill" && printf theirs > "$S/pgveil-one.spill/xact-1.spill"`, env); err != nil {
		t.Fatalf("the other user could not prepare the attack: %v %s", err, out)
	}
	if sd, err := openSpillDir(shared, "one"); err == nil {
		sd.close()
		t.Errorf("pgveil opened a spill directory another user made")
	} else if !strings.Contains(err.Error(), "is owned by uid 65534") {
		t.Errorf("another user's directory: %v", err)
	}
	theirs := filepath.Join(shared, "pgveil-one.spill")
	if st, err := os.Lstat(theirs); err != nil || st.Mode().Perm() != 0o777 {
		t.Errorf("their directory was changed: %v %v", st.Mode(), err)
	}
	equal17(t, "their directory", names(t, theirs), []string{"xact-1.spill"})
	if got := readFile(t, filepath.Join(theirs, "xact-1.spill")); got != "theirs" {
		t.Errorf("their file was changed: %q", got)
	}

	// A link to a directory of their choosing: someone's private files
	// (under spill names even), or pgveil's own directory of another slot.
	victim := filepath.Join(filepath.Dir(shared), "victim")
	mustDo(t, os.Mkdir(victim, 0o755))
	mustDo(t, os.WriteFile(filepath.Join(victim, "xact-1.spill"), []byte("precious"), 0o600))
	own, err := openSpillDir(shared, "own")
	mustDo(t, err)
	own.close()
	for i, target := range []string{victim, own.path} {
		slot := []string{"two", "three"}[i]
		link := filepath.Join(shared, "pgveil-"+slot+".spill")
		before := names(t, target)
		if out, err := asNobody(t, `ln -s "$T" "$L"`, "T="+target, "L="+link); err != nil {
			t.Fatalf("the other user could not plant a link: %v %s", err, out)
		}
		if sd, err := openSpillDir(shared, slot); err == nil {
			sd.close()
			t.Errorf("pgveil followed a link to %s", target)
		} else if !strings.Contains(err.Error(), "is a symbolic link") {
			t.Errorf("a link to %s: %v", target, err)
		}
		equal17(t, "the link's target", names(t, target), before)
	}
	if got := readFile(t, filepath.Join(victim, "xact-1.spill")); got != "precious" {
		t.Errorf("the victim's file was changed: %q", got)
	}
	if st, err := os.Stat(victim); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("the victim directory was chmodded: %v %v", st.Mode(), err)
	}
}

// TestRerun17SpillDirOtherUserCannotReach: once pgveil has its directory
// in a shared /tmp and spills a transaction there, another user can
// neither list it, read the raw rows, hard-link them out, plant a file or
// a link under a spill name, nor move, remove or chmod the directory.
func TestRerun17SpillDirOtherUserCannotReach(t *testing.T) {
	shared := sharedTmp(t, os.ModeSticky|0o777)
	sd, err := openSpillDir(shared, "one")
	mustDo(t, err)
	defer sd.close()
	sp, err := newSpill(sd.path, 7)
	mustDo(t, err)
	defer sp.close()
	mustDo(t, sp.add(7, []byte(rerunCanary)))
	mustDo(t, sp.w.Flush())
	before := names(t, sd.path)
	for _, attack := range []string{
		`ls -la "$D"`,
		`cat "$D/xact-7.spill"`,
		`ln "$D/xact-7.spill" "$S/stolen"`,
		`cp "$D/xact-7.spill" "$S/stolen"`,
		`: > "$D/xact-8.spill"`,
		`ln -s /etc/passwd "$D/xact-9.spill"`,
		`mv "$D" "$S/moved"`,
		`rm -rf "$D"`,
		`chmod 0777 "$D"`,
	} {
		out, err := asNobody(t, attack, "D="+sd.path, "S="+shared)
		if err == nil || strings.Contains(out, rerunCanary) {
			t.Errorf("another user: %s: succeeded (%v): %s", attack, err, out)
		}
	}
	equal17(t, "spill directory after the attacks", names(t, sd.path), before)
	if st, err := os.Lstat(sd.path); err != nil || st.Mode().Perm() != 0o700 || !st.IsDir() {
		t.Errorf("spill directory after the attacks: %v %v", st.Mode(), err)
	}
	var got []string
	mustDo(t, sp.replay(func(m []byte) error { got = append(got, string(m)); return nil }))
	equal17(t, "spilled transaction", got, []string{rerunCanary})
}

// TestRerun17SpillDirOpenedEarly: pgveil's directory was left open to
// others (a hand-made 0777, or a volume's fsGroup), and another user
// opened it then and keeps it open. pgveil tightens it at start; through
// the descriptor they kept, they can then neither read, list, nor plant
// anything in it (the permission is checked at each lookup, not at open).
func TestRerun17SpillDirOpenedEarly(t *testing.T) {
	shared := sharedTmp(t, os.ModeSticky|0o777)
	dir := filepath.Join(shared, "pgveil-one.spill")
	mustDo(t, os.Mkdir(dir, 0o700))
	mustDo(t, os.Chmod(dir, 0o777))
	cmd := nobodyShell(t, `exec 3<"$D" || exit 9
echo ready
read go
cat /proc/self/fd/3/xact-7.spill && echo READ
ls /proc/self/fd/3/ && echo LISTED
touch /proc/self/fd/3/xact-8.spill && echo PLANTED
ln -s /etc/passwd /proc/self/fd/3/xact-9.spill && echo LINKED
exit 0`, "D="+dir)
	stdin, err := cmd.StdinPipe()
	mustDo(t, err)
	stdout, err := cmd.StdoutPipe()
	mustDo(t, err)
	cmd.Stderr = cmd.Stdout
	mustDo(t, cmd.Start())
	r := bufio.NewReader(stdout)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		cmd.Wait()
		t.Fatalf("the other user could not open the directory: %q %v", line, err)
	}
	sd, err := openSpillDir(shared, "one")
	mustDo(t, err)
	defer sd.close()
	sp, err := newSpill(sd.path, 7)
	mustDo(t, err)
	defer sp.close()
	mustDo(t, sp.add(7, []byte(rerunCanary)))
	mustDo(t, sp.w.Flush())
	before := names(t, dir)
	_, err = io.WriteString(stdin, "go\n")
	mustDo(t, err)
	stdin.Close()
	rest, _ := io.ReadAll(r)
	mustDo(t, cmd.Wait())
	for _, bad := range []string{"READ", "LISTED", "PLANTED", "LINKED", rerunCanary} {
		if strings.Contains(string(rest), bad) {
			t.Errorf("through a descriptor opened before pgveil tightened the directory: %s", rest)
			break
		}
	}
	equal17(t, "spill directory", names(t, dir), before)
}

// TestRerun17SpillDirSwappedUnderPgveil: in a directory others may write
// without the sticky bit, another user can move pgveil's directory away
// while it runs and put their own, or a link to their own, in its place.
// The next spilled transaction is refused, never written where they can
// read it.
func TestRerun17SpillDirSwappedUnderPgveil(t *testing.T) {
	base := sharedTmp(t, 0o777)
	sd, err := openSpillDir(base, "one")
	mustDo(t, err)
	defer sd.close()
	env := []string{"D=" + sd.path, "B=" + base}
	if out, err := asNobody(t, `mv "$D" "$B/away" && mkdir -m 0777 "$D" "$B/mine"`, env...); err != nil {
		t.Fatalf("the other user could not swap the directory: %v %s", err, out)
	}
	if sp, err := newSpill(sd.path, 8); err == nil {
		sp.close()
		t.Errorf("pgveil spilled into a directory another user put in its place")
	} else if !strings.Contains(err.Error(), "is owned by uid 65534") {
		t.Errorf("their directory in place of pgveil's: %v", err)
	}
	if out, err := asNobody(t, `rmdir "$D" && ln -s "$B/mine" "$D"`, env...); err != nil {
		t.Fatalf("the other user could not plant a link: %v %s", err, out)
	}
	if sp, err := newSpill(sd.path, 9); err == nil {
		sp.close()
		t.Errorf("pgveil spilled through a link another user put in place of its directory")
	} else if !strings.Contains(err.Error(), "is a symbolic link") {
		t.Errorf("a link in place of pgveil's directory: %v", err)
	}
	if got := names(t, filepath.Join(base, "mine")); len(got) > 0 {
		t.Errorf("files in the other user's directory: %v", got)
	}
}

// TestRerun17SpillDirDefaultIgnoresSharedTmp: without --spill-dir,
// pgveil never uses a TMPDIR others can write (shared like /tmp, or
// group-writable) or one another user owns, so what another user planted
// there under pgveil's name neither stops it nor receives anything.
func TestRerun17SpillDirDefaultIgnoresSharedTmp(t *testing.T) {
	shared := sharedTmp(t, os.ModeSticky|0o777)
	if out, err := asNobody(t, `mkdir -m 0777 "$S/pgveil-one.spill" && ln -s "$S" "$S/pgveil"`, "S="+shared); err != nil {
		t.Fatalf("the other user could not prepare the attack: %v %s", err, out)
	}
	groupW := filepath.Join(filepath.Dir(shared), "group")
	mustDo(t, os.Mkdir(groupW, 0o700))
	mustDo(t, os.Chmod(groupW, 0o770))
	theirs := filepath.Join(filepath.Dir(shared), "theirs")
	mustDo(t, os.Mkdir(theirs, 0o700))
	chownNobody(t, theirs)
	for _, tmp := range []string{shared, groupW, theirs} {
		t.Run(filepath.Base(tmp), func(t *testing.T) {
			state := privateDir(t)
			t.Setenv("TMPDIR", tmp)
			t.Setenv("STATE_DIRECTORY", "")
			t.Setenv("XDG_STATE_HOME", state)
			t.Setenv("HOME", privateDir(t))
			before := names(t, tmp)
			sd, err := openSpillDir("", "one")
			if err != nil {
				t.Fatalf("planted files in a TMPDIR pgveil should not use stopped it: %v", err)
			}
			sd.close()
			if want := filepath.Join(state, "pgveil", "pgveil-one.spill"); sd.path != want {
				t.Errorf("spill directory %s, want %s", sd.path, want)
			}
			equal17(t, "TMPDIR", names(t, tmp), before)
		})
	}
	if st, err := os.Lstat(filepath.Join(shared, "pgveil-one.spill")); err != nil || st.Mode().Perm() != 0o777 {
		t.Errorf("their directory was changed: %v %v", st.Mode(), err)
	}
}

func equal17(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: %q, want %q", what, got, want)
	}
}
