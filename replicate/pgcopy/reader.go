package pgcopy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"pgveil/schema"
)

// Reader splits a stream in COPY text format into rows of fields and decodes
// their escapes. It reads through a 64 KiB buffer and holds at most one line
// in memory; lines longer than the buffer (a value of hundreds of MB) are
// collected in a separate line buffer that grows as needed.
//
// Next allocates nothing per row in the steady state: fields without
// backslashes point straight into the read buffer, and only fields from the
// first backslash of a row onwards are decoded, into a reused scratch buffer
// (or in place, for lines longer than the read buffer).
//
// Input rules beyond the format itself: a line may end in "\n" or "\r\n";
// the last line may lack its newline (a final "\r" is then dropped too);
// a line holding only `\.` ends the data and nothing after it is read; a
// line ending in a backslash that escapes nothing is an error (PostgreSQL
// would take the backslash to escape the newline, but COPY TO never writes
// that). `\.` elsewhere is just an escaped '.', as the documented rules say
// (PostgreSQL's own COPY FROM rejects it; COPY TO never writes it). A Reader
// is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	long    []byte // the current line when it did not fit in br; decoded in place
	scratch []byte // decoded fields of a row that fits in br and has escapes
	rows    int64  // rows returned
	lines   int64  // data lines read, including malformed ones
	bytes   int64  // bytes consumed
	err     error  // sticky: io.EOF or a read error
}

// NewReader returns a Reader that reads COPY text from r through a 64 KiB
// buffer.
func NewReader(r io.Reader) *Reader {
	return newReaderSize(r, readBufferSize)
}

// newReaderSize lets tests exercise the long-line path with small buffers.
func newReaderSize(r io.Reader, size int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, size)}
}

// Rows returns the number of rows Next has returned so far.
func (r *Reader) Rows() int64 { return r.rows }

// Bytes returns the number of bytes of input consumed so far, line
// terminators and the end marker included, for progress reporting.
func (r *Reader) Bytes() int64 { return r.bytes }

// Next reads the next row and returns its fields appended to dst[:0]. The
// Text of each present value points into the Reader's buffers and is valid
// only until the next call to Next; it is capacity-limited, so appending to
// it copies. NULL fields have State transform.Null and no Text.
//
// Next returns io.EOF after the last row, whether the stream simply ends or
// ends with the `\.` marker line. A malformed row returns an error wrapping
// ErrMalformed that names the row and column numbers (never their content);
// that line has been consumed and the next call reads the following row.
// An error reading the underlying stream is returned by this and every later
// call.
func (r *Reader) Next(dst []schema.Value) ([]schema.Value, error) {
	dst = dst[:0]
	line, owned, err := r.nextLine()
	if err != nil {
		return dst, err
	}
	dst, err = r.split(dst, line, owned)
	if err != nil {
		return dst[:0], err
	}
	r.rows++
	return dst, nil
}

// NextRaw reads the next row and returns its fields appended to dst[:0]
// as they are in the stream: still escaped, a NULL as the two bytes `\N`.
// The fields point into the Reader's buffers and are valid only until the
// next call to Next or NextRaw; they are capacity-limited.
//
// Why: COPY TO writes a field exactly as COPY FROM reads it, so a field
// that is not masked (a kept column) goes from production's stream to the
// target's as these bytes, with no decoding and no escaping (see
// AppendRaw); DecodeField decodes the fields that are masked. Joining
// the fields with tabs gives back the row's line, terminator aside.
//
// Errors and the end of the data are as for Next; a malformed line (one
// ending in a backslash that escapes nothing) is reported here, whatever
// field it is in.
func (r *Reader) NextRaw(dst [][]byte) ([][]byte, error) {
	dst = dst[:0]
	line, _, err := r.nextLine()
	if err != nil {
		return dst, err
	}
	if dst, err = r.splitRaw(dst, line); err != nil {
		return dst[:0], err
	}
	r.rows++
	return dst, nil
}

// DecodeField decodes one field NextRaw returned, col being its 1-based
// column for error messages. The value's Text is raw itself when raw has
// no escape, or else points into the Reader's scratch buffer, valid until
// the next call to DecodeField, Next or NextRaw. raw must be one field as
// NextRaw returns it (such a field is never malformed); other bytes get an
// error only when they have a backslash: a field without one is not
// searched for tabs, which would cost every kept byte a second scan.
func (r *Reader) DecodeField(raw []byte, col int) (schema.Value, error) {
	bs := bytes.IndexByte(raw, '\\')
	if bs < 0 {
		return schema.Value{Text: raw}, nil
	}
	if cap(r.scratch) < len(raw) {
		r.scratch = make([]byte, max(len(raw), 2*cap(r.scratch), 1024))
	}
	var one [1]schema.Value
	vals, err := r.decode(one[:0], raw, 0, bs, r.scratch[:cap(r.scratch)], 0)
	switch {
	case err != nil:
		return schema.Value{}, fmt.Errorf("pgcopy: row %d, column %d: %w", r.lines, col, ErrMalformed)
	case len(vals) != 1:
		// An unescaped tab: raw is more than one field.
		return schema.Value{}, fmt.Errorf("pgcopy: row %d, column %d: %w: a tab inside a field", r.lines, col, ErrMalformed)
	}
	return vals[0], nil
}

// nextLine reads the next data line without its terminator; it returns
// io.EOF (sticky) at the end of the data or at the `\.` marker line.
func (r *Reader) nextLine() (line []byte, owned bool, err error) {
	if r.err != nil {
		return nil, false, r.err
	}
	line, owned, err = r.readLine()
	if err != nil {
		if err != io.EOF {
			err = fmt.Errorf("pgcopy: row %d: read: %w", r.lines+1, err)
		}
		r.err = err
		return nil, false, err
	}
	r.bytes += int64(len(line))
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		n--
	}
	if n > 0 && line[n-1] == '\r' {
		n--
	}
	line = line[:n]
	if n == 2 && line[0] == '\\' && line[1] == '.' {
		r.err = io.EOF
		return nil, false, io.EOF
	}
	r.lines++
	return line, owned, nil
}

// splitRaw appends the escaped fields of line (without its terminator) to
// dst: a tab separates fields unless a backslash escapes it, as decode
// reads them.
func (r *Reader) splitRaw(dst [][]byte, line []byte) ([][]byte, error) {
	n := len(line)
	pos := 0 // the current field's start
	i := 0   // where to look for the next tab or backslash
	tab := indexFrom(line, 0, '\t')
	bs := indexFrom(line, 0, '\\')
	for {
		if tab < i {
			tab = indexFrom(line, i, '\t')
		}
		if bs < i {
			bs = indexFrom(line, i, '\\')
		}
		switch {
		case tab < bs:
			dst = append(dst, line[pos:tab:tab])
			pos, i = tab+1, tab+1
		case bs == n: // and tab == n: the last field
			return append(dst, line[pos:n:n]), nil
		case bs+1 == n:
			return dst, fmt.Errorf("pgcopy: row %d, column %d: %w: backslash at end of line", r.lines, len(dst)+1, ErrMalformed)
		default:
			i = bs + 2 // the escaped byte is data, a tab too
		}
	}
}

// readLine returns the next line with its terminator, if any. owned reports
// whether the line is in r.long (and so may be modified) rather than in the
// bufio buffer. It returns io.EOF only when no bytes are left.
func (r *Reader) readLine() (line []byte, owned bool, err error) {
	if cap(r.long) > maxRetained {
		r.long = nil // a previous huge row grew it; do not keep that memory
	}
	b, err := r.br.ReadSlice('\n')
	switch {
	case err == nil:
		return b, false, nil
	case err == io.EOF:
		if len(b) == 0 {
			return nil, false, io.EOF
		}
		return b, false, nil // last line without newline
	case !errors.Is(err, bufio.ErrBufferFull):
		return nil, false, err
	}
	// The line is longer than the read buffer: collect it in r.long.
	r.long = append(r.long[:0], b...)
	for {
		b, err = r.br.ReadSlice('\n')
		if need := len(r.long) + len(b); need > cap(r.long) {
			// Grow by doubling: append's 1.25x growth for large slices
			// would copy a 100 MB line several times over.
			grown := make([]byte, len(r.long), max(need, 2*cap(r.long)))
			copy(grown, r.long)
			r.long = grown
		}
		r.long = append(r.long, b...)
		switch {
		case err == nil || err == io.EOF:
			return r.long, true, nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return nil, false, err
		}
	}
}

// split appends the fields of line (without its terminator) to dst.
func (r *Reader) split(dst []schema.Value, line []byte, owned bool) ([]schema.Value, error) {
	bs := bytes.IndexByte(line, '\\')
	if bs < 0 {
		// Fast path: no escapes, every field points into line.
		for {
			t := bytes.IndexByte(line, '\t')
			if t < 0 {
				return append(dst, schema.Value{Text: line[:len(line):len(line)]}), nil
			}
			dst = append(dst, schema.Value{Text: line[:t:t]})
			line = line[t+1:]
		}
	}
	// Fields wholly before the first backslash still point into line.
	pos := 0
	for {
		t := bytes.IndexByte(line[pos:bs], '\t')
		if t < 0 {
			break
		}
		dst = append(dst, schema.Value{Text: line[pos : pos+t : pos+t]})
		pos += t + 1
	}
	// The rest is decoded: in place if line is ours (decoding never
	// lengthens, so writes stay behind reads), else into scratch.
	if owned {
		return r.decode(dst, line, pos, bs, line, pos)
	}
	if need := len(line) - pos; cap(r.scratch) < need {
		r.scratch = make([]byte, max(need, 2*cap(r.scratch), 1024))
	}
	return r.decode(dst, line, pos, bs, r.scratch[:cap(r.scratch)], 0)
}

// decode appends the fields of line[pos:], which starts a field, to dst,
// decoding escapes into out[w:]. bs is the index of the first backslash at
// or after pos (len(line) if none). out may alias line if w <= pos.
func (r *Reader) decode(dst []schema.Value, line []byte, pos, bs int, out []byte, w int) ([]schema.Value, error) {
	n := len(line)
	for {
		// pos starts a field.
		if bs == pos && pos+1 < n && line[pos+1] == 'N' && (pos+2 == n || line[pos+2] == '\t') {
			dst = append(dst, schema.Value{State: schema.Null})
			pos += 2
			if pos == n {
				return dst, nil
			}
			pos++
			bs = indexFrom(line, pos, '\\')
			continue
		}
		tab := indexFrom(line, pos, '\t')
		start := w
		for bs < tab {
			w += copy(out[w:], line[pos:bs])
			j := bs + 1
			if j == n {
				return dst, fmt.Errorf("pgcopy: row %d, column %d: %w: backslash at end of line", r.lines, len(dst)+1, ErrMalformed)
			}
			c := line[j]
			j++
			switch c {
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'v':
				c = '\v'
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v := c - '0'
				for k := 0; k < 2 && j < n && line[j] >= '0' && line[j] <= '7'; k++ {
					v = v<<3 | (line[j] - '0') // wraps modulo 256, like PostgreSQL
					j++
				}
				c = v
			case 'x':
				if j < n && unhex(line[j]) >= 0 {
					v := byte(unhex(line[j]))
					j++
					if j < n && unhex(line[j]) >= 0 {
						v = v<<4 | byte(unhex(line[j]))
						j++
					}
					c = v
				}
			case '\t':
				// An escaped tab is data, not a separator.
				tab = indexFrom(line, j, '\t')
			}
			out[w] = c
			w++
			pos = j
			bs = indexFrom(line, pos, '\\')
		}
		w += copy(out[w:], line[pos:tab])
		dst = append(dst, schema.Value{Text: out[start:w:w]})
		if tab == n {
			return dst, nil
		}
		pos = tab + 1
	}
}

// indexFrom returns the index of the first c in b[from:], or len(b).
func indexFrom(b []byte, from int, c byte) int {
	if i := bytes.IndexByte(b[from:], c); i >= 0 {
		return from + i
	}
	return len(b)
}

// unhex returns the value of the hex digit c, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
