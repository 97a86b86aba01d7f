package replicate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// spill holds the messages of one streamed (in-progress) transaction on
// disk until it commits or aborts, so that memory stays bounded whatever
// the transaction's size. Each message is stored as a 4-byte length and
// its bytes. The offset at which each subtransaction's first message was
// written is kept, so that a subtransaction abort truncates the file there
// (everything after it belongs to that subtransaction or its children, as
// in PostgreSQL's own apply worker).
type spill struct {
	path    string
	f       *os.File
	w       *bufio.Writer
	size    int64
	subxact map[uint32]int64 // first offset of each (sub)transaction
	n       int64            // messages written
}

func newSpill(dir string, xid uint32) (*spill, error) {
	path := filepath.Join(dir, fmt.Sprintf("xact-%d.spill", xid))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spilling streamed transaction %d: %w", xid, err)
	}
	return &spill{path: path, f: f, w: bufio.NewWriterSize(f, 256<<10), subxact: map[uint32]int64{}}, nil
}

// add appends one message of (sub)transaction xid.
func (s *spill) add(xid uint32, msg []byte) error {
	if _, ok := s.subxact[xid]; !ok {
		s.subxact[xid] = s.size
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(msg)))
	if _, err := s.w.Write(hdr[:]); err != nil {
		return fmt.Errorf("spill %s: %w", s.path, err)
	}
	if _, err := s.w.Write(msg); err != nil {
		return fmt.Errorf("spill %s: %w", s.path, err)
	}
	s.size += 4 + int64(len(msg))
	s.n++
	return nil
}

// abortSub discards subtransaction subxid and everything written after it.
func (s *spill) abortSub(subxid uint32) error {
	off, ok := s.subxact[subxid]
	if !ok {
		return nil // it made no change we kept
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spill %s: %w", s.path, err)
	}
	if err := s.f.Truncate(off); err != nil {
		return fmt.Errorf("spill %s: %w", s.path, err)
	}
	if _, err := s.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("spill %s: %w", s.path, err)
	}
	s.w.Reset(s.f)
	s.size = off
	for x, o := range s.subxact {
		if o >= off {
			delete(s.subxact, x)
		}
	}
	return nil
}

// replay calls fn with every message in order. The slice passed to fn is
// valid until fn returns.
func (s *spill) replay(fn func(msg []byte) error) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spill %s: %w", s.path, err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spill %s: %w", s.path, err)
	}
	r := bufio.NewReaderSize(io.LimitReader(s.f, s.size), 256<<10)
	var hdr [4]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("spill %s: %w", s.path, err)
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("spill %s: truncated: %w", s.path, err)
		}
		if err := fn(buf); err != nil {
			return err
		}
	}
}

// close removes the file.
func (s *spill) close() {
	s.f.Close()
	os.Remove(s.path)
}
