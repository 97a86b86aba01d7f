package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// procCPU is the CPU time (user and system) of a process and of its
// children that have exited and been waited for. For a postmaster that is
// the server's own work plus that of every backend, walsender and worker
// that has ended: measure after a subject's connections have closed.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after it start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
	if len(f) < 15 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var ticks int64
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// cpuMark is the CPU time both clusters had used at one moment.
type cpuMark struct{ prod, analytics time.Duration }

// cpuNow reads both clusters' CPU time; a cluster it cannot read counts 0.
func (s *Site) cpuNow() cpuMark {
	var m cpuMark
	if pid := s.Prod.PID(); pid > 0 {
		m.prod, _ = procCPU(pid)
	}
	if pid := s.Analytics.PID(); pid > 0 {
		m.analytics, _ = procCPU(pid)
	}
	return m
}

// cpuSettle is how long a subject's server processes get to exit after
// its connections close, so that their CPU time is counted.
const cpuSettle = 300 * time.Millisecond

// cpuSince records in r the CPU time both clusters used since m, after
// letting the subject's backends exit.
func (s *Site) cpuSince(m cpuMark, r *Result) {
	time.Sleep(cpuSettle)
	now := s.cpuNow()
	r.ProdCPU = (now.prod - m.prod).Seconds()
	r.TargetCPU = (now.analytics - m.analytics).Seconds()
}
