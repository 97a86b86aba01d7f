package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// run tunes the garbage collector unless the environment does.
func TestTuneGC(t *testing.T) {
	prevPercent := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(prevPercent)
		debug.SetMemoryLimit(prevLimit)
	})
	read := func() (int, int64) {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p, debug.SetMemoryLimit(-1)
	}
	for _, tc := range []struct {
		env     map[string]string
		percent int
		limit   int64
	}{
		{map[string]string{"GOGC": "50"}, 100, math.MaxInt64},
		{map[string]string{"GOMEMLIMIT": "1GiB"}, 100, math.MaxInt64},
		{map[string]string{}, runGCPercent, runMemoryLimit},
	} {
		tuneGC(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		if p, l := read(); p != tc.percent || l != tc.limit {
			t.Errorf("env %v: GOGC %d, memory limit %d; want %d, %d", tc.env, p, l, tc.percent, tc.limit)
		}
	}
}
