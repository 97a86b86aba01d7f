package replicate

import (
	"fmt"
	"strings"
	"testing"
)

func TestSpillReplayAndSubAbort(t *testing.T) {
	s, err := newSpill(t.TempDir(), 100)
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
	s, err := newSpill(t.TempDir(), 7)
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
