package replicate

import (
	"context"
	"testing"
	"time"
)

// TestReceiveContext: one context serves while the wanted deadline does
// not come sooner; a sooner deadline, an expired context or the parent's
// end give a new one.
func TestReceiveContext(t *testing.T) {
	parent, stop := context.WithCancel(context.Background())
	var r receiveContext
	defer r.release()
	now := time.Now()
	a := r.until(parent, now.Add(time.Hour))
	if b := r.until(parent, now.Add(2*time.Hour)); b != a {
		t.Error("a later deadline replaced the context")
	}
	c := r.until(parent, now.Add(time.Minute))
	if c == a {
		t.Fatal("a sooner deadline kept the context")
	}
	if d, _ := c.Deadline(); !d.Equal(now.Add(time.Minute)) {
		t.Errorf("deadline %v, want %v", d, now.Add(time.Minute))
	}
	if a.Err() == nil {
		t.Error("the replaced context was not cancelled")
	}
	e := r.until(parent, time.Now().Add(time.Millisecond))
	<-e.Done() // its timer has fired: Err is set
	if f := r.until(parent, time.Now().Add(time.Hour)); f == e || f.Err() != nil {
		t.Error("an expired context was reused")
	}
	stop()
	if g := r.until(parent, time.Now().Add(time.Hour)); g.Err() == nil {
		t.Error("the parent's end did not end the context")
	}
}
