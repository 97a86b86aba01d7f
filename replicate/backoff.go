package replicate

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is a capped exponential backoff with jitter: the waits between
// attempts that keep failing, or keep restarting, grow from base to max,
// so that a condition that persists does not retry in a tight loop; Run
// resets it after an attempt that went well for a while.
type backoff struct {
	// immediate: the first wait after a reset is 0 (a restart for a
	// reload, or a one-off schema change, is not delayed).
	immediate bool
	base, max time.Duration
	// jitter is the fraction of each wait drawn at random (0: none), so
	// that instances that restart together do not retry together.
	jitter float64
	// rand returns a number in [0, 1); rand.Float64 when nil.
	rand func() float64

	n int // waits since the last reset
}

// next returns the wait before the next attempt, and counts it.
func (b *backoff) next() time.Duration {
	n := b.n
	b.n++
	if b.immediate {
		if n == 0 {
			return 0
		}
		n--
	}
	d := b.max
	if n < 32 { // beyond, base<<n overflows: the cap holds anyway
		d = min(b.base<<n, b.max)
	}
	if b.jitter > 0 {
		r := b.rand
		if r == nil {
			r = rand.Float64
		}
		d -= time.Duration(float64(d) * b.jitter * r())
	}
	return d
}

// reset starts the backoff again from its first wait.
func (b *backoff) reset() { b.n = 0 }

// sleep waits d, or until ctx ends; it reports whether the wait ran out
// (false: ctx ended).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
