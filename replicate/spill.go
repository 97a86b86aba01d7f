package replicate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// spill holds the messages of one streamed (in-progress) transaction on
// disk until it commits or aborts, so that memory stays bounded whatever
// the transaction's size. Each message is stored as a 4-byte length and
// its bytes. The offset at which each subtransaction's first message was
// written is kept, so that a subtransaction abort truncates the file there
// (everything after it belongs to that subtransaction or its children, as
// in PostgreSQL's own apply worker).
type spill struct {
	path    string   // for messages
	root    *os.Root // the spill directory, held open to remove the file by name
	name    string
	f       *os.File
	w       *bufio.Writer
	size    int64
	subxact map[uint32]int64 // first offset of each (sub)transaction
	n       int64            // messages written
}

// newSpill creates the spill file of transaction xid in dir, the private
// directory openSpillDir checked at start. The directory is checked again
// (cheap: once per streamed transaction), because it is known here only by
// its path. The file is always a new one (O_EXCL: never a link or a file
// someone else made under that name, written through), of mode 0600.
func newSpill(dir string, xid uint32) (*spill, error) {
	root, err := openPrivateDir(dir, false)
	if err != nil {
		return nil, fmt.Errorf("spilling streamed transaction %d: %w", xid, err)
	}
	name := spillName(xid)
	path := filepath.Join(dir, name)
	f, err := createSpillFile(root, name, path)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("spilling streamed transaction %d: %w", xid, err)
	}
	return &spill{path: path, root: root, name: name, f: f, w: bufio.NewWriterSize(f, 256<<10), subxact: map[uint32]int64{}}, nil
}

// createSpillFile creates name exclusively. A file already there is
// removed and the creation tried again only if pgveil could have made it
// (a left-over of its own: a regular file of its uid with one link);
// anything else is refused, never truncated or written through: a link
// would send raw rows to wherever it points, a hard link would keep them
// readable under its other name.
func createSpillFile(root *os.Root, name, path string) (*os.File, error) {
	for retried := false; ; retried = true {
		f, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err == nil || !errors.Is(err, fs.ErrExist) || retried {
			return f, err
		}
		fi, err := root.Lstat(name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // gone meanwhile
			}
			return nil, err
		}
		if why := notOurs(fi); why != "" {
			return nil, fmt.Errorf("%s already exists and %s, which pgveil never makes: it will not write a transaction through it; find out who put it there, remove it, and start pgveil again", path, why)
		}
		// Removing the name, not truncating the file: whoever still has the
		// old file open keeps the old file, and sees none of the new rows.
		// (Should resync's random number meet a live transaction's xid, each
		// keeps its own file; only a name is lost.)
		if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
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
	s.root.Remove(s.name)
	s.root.Close()
}
