package source

import (
	"strings"
	"testing"
)

func leaves(entries ...[3]any) Leaves {
	var l Leaves
	for _, e := range entries {
		l.add(uint32(e[0].(int)), uint32(e[1].(int)), e[2].(string), strings.HasSuffix(e[2].(string), "_empty"))
	}
	return l
}

func TestLeavesRecordedForm(t *testing.T) {
	l := leaves([3]any{30, 300, "p3"}, [3]any{10, 100, "p1"}, [3]any{20, 200, "p2"})
	if got := l.String(); got != "10:100,20:200,30:300" {
		t.Errorf("String = %q", got)
	}
	back, err := ParseLeaves(l.String())
	if err != nil || !back.Equal(l) {
		t.Errorf("ParseLeaves(%q) = %v, %v", l.String(), back, err)
	}
	if none, err := ParseLeaves(""); err != nil || none.String() != "" {
		t.Errorf("no leaves: %v, %v", none, err)
	}
	for _, bad := range []string{"1", "1:x", "x:1", "1:2,", "-1:2", "4294967296:1"} {
		if _, err := ParseLeaves(bad); err == nil {
			t.Errorf("ParseLeaves(%q) accepted", bad)
		}
	}
}

func TestLeavesCompare(t *testing.T) {
	recorded, _ := ParseLeaves("10:100,20:200")
	for _, tc := range []struct {
		name     string
		current  Leaves
		diverged bool
		why      string
	}{
		{"unchanged", leaves([3]any{10, 100, "p1"}, [3]any{20, 200, "p2"}), false, ""},
		{"truncated", leaves([3]any{10, 101, "p1"}, [3]any{20, 200, "p2"}), true, "p1 truncated or rewritten"},
		{"detached", leaves([3]any{20, 200, "p2"}), true, "partition with OID 10 detached or dropped"},
		{"new empty partition", leaves([3]any{10, 100, "p1"}, [3]any{20, 200, "p2"}, [3]any{30, 300, "p3_empty"}), false, ""},
		{"attached with rows", leaves([3]any{10, 100, "p1"}, [3]any{20, 200, "p2"}, [3]any{30, 300, "p3"}), true, "p3 attached with rows"},
		{"all at once", leaves([3]any{10, 101, "p1"}, [3]any{30, 300, "p3"}), true, "p1 truncated or rewritten; partition with OID 20 detached or dropped; p3 attached with rows"},
	} {
		ch := recorded.Compare(tc.current)
		if ch.Diverged != tc.diverged || ch.Why != tc.why {
			t.Errorf("%s: diverged %v (%q), want %v (%q)", tc.name, ch.Diverged, ch.Why, tc.diverged, tc.why)
		}
		if !ch.Next.Equal(tc.current) {
			t.Errorf("%s: next %q, want the current leaves %q", tc.name, ch.Next, tc.current)
		}
	}
}
