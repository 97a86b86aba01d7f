// Package pgcopy reads and writes PostgreSQL's COPY text format (the default
// format of COPY, not CSV and not binary).
//
// In this format a row is one line; fields are separated by a tab and rows
// end with a newline ("\r\n" is accepted on input). The two characters `\N`
// alone in a field are the SQL NULL. Inside a field a backslash starts an
// escape: `\b \f \n \r \t \v \\`, a backslash followed by one to three octal
// digits (the byte with that value, modulo 256), `\x` followed by one or two
// hex digits, and a backslash followed by any other character is that
// character (so `\\N` is the two-character string `\N`). A line holding only
// `\.` marks the end of the data. Bytes are not validated as UTF-8 or as any
// other encoding.
//
// Empty lines: a line with no bytes is a row of one empty-string field, which
// is how PostgreSQL writes a one-column row holding an empty string. A
// zero-column row (which PostgreSQL also writes as an empty line) cannot be
// told apart from it; AppendRow writes it as an empty line too, and the
// Reader decodes that as one empty field.
//
// Errors never contain field content, since the data is personal: they name
// the row (and, where it helps, the column) by number only.
package pgcopy

import (
	"errors"
	"fmt"
	"io"
	"pgveil/schema"
)

const (
	// readBufferSize is the size of the Reader's bufio buffer. Lines up to
	// this size are decoded without copying unless they contain escapes.
	readBufferSize = 64 << 10
	// maxRetained bounds the buffers kept between rows: a buffer grown past
	// it for one huge row is dropped afterwards instead of being kept for
	// the life of the Reader or Writer.
	maxRetained = 4 << 20
	// flushThreshold is how much the Writer buffers before writing.
	flushThreshold = 256 << 10
)

// ErrMalformed is wrapped by the errors the Reader returns for input that is
// not valid COPY text.
var ErrMalformed = errors.New("malformed COPY text")

// ErrUnchanged is wrapped by the errors AppendRow and Writer.WriteRow return
// for a transform.Unchanged value, which has no text to write.
var ErrUnchanged = errors.New("unchanged TOAST value has no COPY representation")

// escapes maps each byte that COPY TO escapes to the letter written after
// the backslash; zero means the byte is written as it is.
var escapes = [256]byte{
	'\\': '\\',
	'\b': 'b',
	'\f': 'f',
	'\n': 'n',
	'\r': 'r',
	'\t': 't',
	'\v': 'v',
}

// AppendRow appends one row in COPY text format to dst and returns the
// extended buffer: the fields separated by tabs, escaped as PostgreSQL's
// COPY TO escapes them (backslash, newline, carriage return, tab, backspace,
// form feed and vertical tab become `\\ \n \r \t \b \f \v`; every other byte,
// including other control characters and non-ASCII bytes, is copied as it
// is), NULL written as `\N`, and the row ended by a newline. It never writes
// the `\.` end marker.
//
// A transform.Unchanged value (or an unknown State) is an error wrapping
// ErrUnchanged (or not); dst is then returned with its original length.
func AppendRow(dst []byte, row []schema.Value) ([]byte, error) {
	out, col, err := appendRow(dst, row)
	if err != nil {
		return out, fmt.Errorf("pgcopy: column %d: %w", col, err)
	}
	return out, nil
}

// appendRow is AppendRow without the error decoration; on error it returns
// the 1-based column at fault.
func appendRow(dst []byte, row []schema.Value) ([]byte, int, error) {
	orig := len(dst)
	for i := range row {
		v := &row[i]
		if i > 0 {
			dst = append(dst, '\t')
		}
		switch v.State {
		case schema.Present:
			dst = appendEscaped(dst, v.Text)
		case schema.Null:
			dst = append(dst, '\\', 'N')
		case schema.Unchanged:
			return dst[:orig], i + 1, ErrUnchanged
		default:
			return dst[:orig], i + 1, fmt.Errorf("invalid value state %d", v.State)
		}
	}
	return append(dst, '\n'), 0, nil
}

// AppendField appends one field in COPY text format to dst, escaped as
// AppendRow escapes it, with no separator or terminator. A
// transform.Unchanged value (or an unknown State) is an error; dst is then
// returned as it was.
func AppendField(dst []byte, v schema.Value) ([]byte, error) {
	switch v.State {
	case schema.Present:
		return appendEscaped(dst, v.Text), nil
	case schema.Null:
		return append(dst, '\\', 'N'), nil
	case schema.Unchanged:
		return dst, ErrUnchanged
	}
	return dst, fmt.Errorf("invalid value state %d", v.State)
}

// appendEscaped appends s with COPY TO's escapes.
func appendEscaped(dst, s []byte) []byte {
	if free := cap(dst) - len(dst); free < len(s) {
		// One allocation for the common case of few escapes.
		grown := make([]byte, len(dst), len(dst)+len(s)+len(s)/8+16+cap(dst))
		copy(grown, dst)
		dst = grown
	}
	start := 0
	for i, c := range s {
		if e := escapes[c]; e != 0 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', e)
			start = i + 1
		}
	}
	return append(dst, s[start:]...)
}

// Writer buffers rows in COPY text format and writes them to an io.Writer
// in chunks of about 256 KiB. Rows are not written until the buffer fills or
// Flush is called. It never writes the `\.` end marker (the COPY protocol
// ends the data with CopyDone instead). A Writer is not safe for concurrent
// use.
type Writer struct {
	w    io.Writer
	buf  []byte
	rows int64 // rows accepted so far, for error messages
	err  error // sticky write error
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w}
}

// WriteRow appends row to the buffer (see AppendRow for the encoding) and
// writes the buffer to the underlying writer once it is large enough.
//
// A row that cannot be encoded (it holds a transform.Unchanged value) is
// rejected with an error naming its row and column numbers; nothing of it is
// buffered and the Writer stays usable. An error from the underlying writer
// is returned by this and every later call.
func (w *Writer) WriteRow(row []schema.Value) error {
	if w.err != nil {
		return w.err
	}
	if w.buf == nil {
		w.buf = make([]byte, 0, flushThreshold+flushThreshold/4)
	}
	buf, col, err := appendRow(w.buf, row)
	w.buf = buf
	if err != nil {
		return fmt.Errorf("pgcopy: row %d, column %d: %w", w.rows+1, col, err)
	}
	w.rows++
	if len(w.buf) >= flushThreshold {
		return w.flush()
	}
	return nil
}

// Flush writes all buffered rows to the underlying writer.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	return w.flush()
}

func (w *Writer) flush() error {
	n, err := w.w.Write(w.buf)
	if err == nil && n < len(w.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("pgcopy: write: %w", err)
		return w.err
	}
	if cap(w.buf) > maxRetained {
		w.buf = nil // one huge row grew it; do not keep that memory
	} else {
		w.buf = w.buf[:0]
	}
	return nil
}
