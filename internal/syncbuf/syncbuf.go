// Package syncbuf is a buffer that several goroutines may write while
// another reads it: the log of a pipeline or process under test.
package syncbuf

import (
	"strings"
	"sync"
)

// Buffer is a concurrency-safe strings.Builder.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (w *Buffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// String returns what was written so far.
func (w *Buffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
