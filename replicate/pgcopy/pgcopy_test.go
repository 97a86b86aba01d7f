package pgcopy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"pgveil/schema"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
)

var null = schema.SQLNull()

func txt(s string) schema.Value { return schema.Text(s) }

func row(vs ...schema.Value) []schema.Value { return vs }

// sameRow reports whether a and b hold the same values (NULLs compare equal
// whatever their Text).
func sameRow(a, b []schema.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].State != b[i].State {
			return false
		}
		if a[i].State == schema.Present && !bytes.Equal(a[i].Text, b[i].Text) {
			return false
		}
	}
	return true
}

func fmtRows(rows [][]schema.Value) string {
	var sb strings.Builder
	for _, r := range rows {
		sb.WriteString("[")
		for i, v := range r {
			if i > 0 {
				sb.WriteString(" ")
			}
			if v.State == schema.Null {
				sb.WriteString("NULL")
			} else {
				fmt.Fprintf(&sb, "%q", v.Text)
			}
		}
		sb.WriteString("]")
	}
	return sb.String()
}

// cloneRow copies a row out of the Reader's buffers.
func cloneRow(r []schema.Value) []schema.Value {
	out := make([]schema.Value, len(r))
	for i, v := range r {
		out[i] = schema.Value{State: v.State, Text: bytes.Clone(v.Text)}
		if v.State == schema.Present && out[i].Text == nil {
			out[i].Text = []byte{}
		}
	}
	return out
}

// readAll decodes data through rd, returning the rows and the first error
// other than io.EOF.
func readAll(rd *Reader) ([][]schema.Value, error) {
	var rows [][]schema.Value
	var buf []schema.Value
	for {
		var err error
		buf, err = rd.Next(buf)
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		rows = append(rows, cloneRow(buf))
	}
}

// readers returns Readers over data with different buffer sizes and read
// patterns, so the long-line path and buffer boundaries are exercised.
func readers(data string) map[string]*Reader {
	return map[string]*Reader{
		"64KiB":         NewReader(strings.NewReader(data)),
		"16B":           newReaderSize(strings.NewReader(data), 16),
		"16B-onebyte":   newReaderSize(iotest.OneByteReader(strings.NewReader(data)), 16),
		"64KiB-onebyte": NewReader(iotest.OneByteReader(strings.NewReader(data))),
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want [][]schema.Value
	}{
		{"empty stream", "", nil},
		{"simple", "a\tb\n", [][]schema.Value{row(txt("a"), txt("b"))}},
		{"two rows", "1\tx\n2\ty\n", [][]schema.Value{row(txt("1"), txt("x")), row(txt("2"), txt("y"))}},
		{"final line without newline", "a\tb\nc\td", [][]schema.Value{row(txt("a"), txt("b")), row(txt("c"), txt("d"))}},
		{"crlf", "a\tb\r\nc\r\n", [][]schema.Value{row(txt("a"), txt("b")), row(txt("c"))}},
		{"final cr without newline", "a\r", [][]schema.Value{row(txt("a"))}},
		{"raw cr inside", "a\rb\n", [][]schema.Value{row(txt("a\rb"))}},
		{"empty line is one empty field", "\n", [][]schema.Value{row(txt(""))}},
		{"two empty lines", "\n\n", [][]schema.Value{row(txt("")), row(txt(""))}},
		{"empty crlf line", "\r\n", [][]schema.Value{row(txt(""))}},
		{"empty fields", "\t\n", [][]schema.Value{row(txt(""), txt(""))}},
		{"empty fields around", "\ta\t\n", [][]schema.Value{row(txt(""), txt("a"), txt(""))}},
		{"null", "\\N\n", [][]schema.Value{row(null)}},
		{"nulls", "\\N\t\\N\n", [][]schema.Value{row(null, null)}},
		{"null among", "1\t\\N\tx\n", [][]schema.Value{row(txt("1"), null, txt("x"))}},
		{"null last without newline", "1\t\\N", [][]schema.Value{row(txt("1"), null)}},
		{"escaped backslash N is text", "\\\\N\n", [][]schema.Value{row(txt(`\N`))}},
		{"backslash N prefix", "\\Nx\n", [][]schema.Value{row(txt("Nx"))}},
		{"backslash N suffix", "x\\N\n", [][]schema.Value{row(txt("xN"))}},
		{"null then empty", "\\N\t\n", [][]schema.Value{row(null, txt(""))}},
		{"esc b", `a\bz` + "\n", [][]schema.Value{row(txt("a\bz"))}},
		{"esc f", `a\fz` + "\n", [][]schema.Value{row(txt("a\fz"))}},
		{"esc n", `a\nz` + "\n", [][]schema.Value{row(txt("a\nz"))}},
		{"esc r", `a\rz` + "\n", [][]schema.Value{row(txt("a\rz"))}},
		{"esc t", `a\tz` + "\n", [][]schema.Value{row(txt("a\tz"))}},
		{"esc v", `a\vz` + "\n", [][]schema.Value{row(txt("a\vz"))}},
		{"esc backslash", `a\\z` + "\n", [][]schema.Value{row(txt(`a\z`))}},
		{"all escapes", `\b\f\n\r\t\v\\` + "\n", [][]schema.Value{row(txt("\b\f\n\r\t\v\\"))}},
		{"octal 1 digit", `\0` + "\n", [][]schema.Value{row(txt("\x00"))}},
		{"octal 2 digits", `\12` + "\n", [][]schema.Value{row(txt("\n"))}},
		{"octal 3 digits", `\101` + "\n", [][]schema.Value{row(txt("A"))}},
		{"octal stops after 3", `\1011` + "\n", [][]schema.Value{row(txt("A1"))}},
		{"octal stops at non-octal", `\18x` + "\n", [][]schema.Value{row(txt("\x018x"))}},
		{"octal wraps", `\777\400` + "\n", [][]schema.Value{row(txt("\xff\x00"))}},
		{"not octal 8", `\8` + "\n", [][]schema.Value{row(txt("8"))}},
		{"hex 2 digits", `\x41` + "\n", [][]schema.Value{row(txt("A"))}},
		{"hex upper", `\xFf` + "\n", [][]schema.Value{row(txt("\xff"))}},
		{"hex 1 digit", `\x4` + "\n", [][]schema.Value{row(txt("\x04"))}},
		{"hex 1 digit then other", `\x4g` + "\n", [][]schema.Value{row(txt("\x04g"))}},
		{"hex stops after 2", `\x414` + "\n", [][]schema.Value{row(txt("A4"))}},
		{"x without digits", `\xg` + "\n", [][]schema.Value{row(txt("xg"))}},
		{"x at end", `\x` + "\n", [][]schema.Value{row(txt("x"))}},
		{"other char", `\a\"\.\ ` + "\n", [][]schema.Value{row(txt(`a". `))}},
		{"escaped raw tab is data", "a\\\tb\tc\n", [][]schema.Value{row(txt("a\tb"), txt("c"))}},
		{"escaped raw tab at end", "a\\\t\n", [][]schema.Value{row(txt("a\t"))}},
		{"escaped raw cr", "a\\\rb\n", [][]schema.Value{row(txt("a\rb"))}},
		{"escaped non-ascii", "\\é\n", [][]schema.Value{row(txt("é"))}},
		{"escapes after plain fields", "1\tfoo\tb\\tar\t\\N\tbaz\n", [][]schema.Value{row(txt("1"), txt("foo"), txt("b\tar"), null, txt("baz"))}},
		{"plain after escapes", "\\\\\tplain\t\\n\tend\n", [][]schema.Value{row(txt(`\`), txt("plain"), txt("\n"), txt("end"))}},
		{"bytes pass through", "é\x01\x7f\xff\x00\n", [][]schema.Value{row(txt("é\x01\x7f\xff\x00"))}},
		{"end marker", "a\n\\.\nb\n", [][]schema.Value{row(txt("a"))}},
		{"end marker crlf", "a\r\n\\.\r\nb\n", [][]schema.Value{row(txt("a"))}},
		{"end marker without newline", "a\n\\.", [][]schema.Value{row(txt("a"))}},
		{"end marker only", "\\.\n", nil},
		{"end marker then garbage", "\\.\n\\", nil},
		{"dot line is data", ".\n", [][]schema.Value{row(txt("."))}},
		{"escaped dot then more", "\\.x\n", [][]schema.Value{row(txt(".x"))}},
		{"escaped dot in second field", "a\t\\.\n", [][]schema.Value{row(txt("a"), txt("."))}},
		{"escaped backslash dot", "\\\\.\n", [][]schema.Value{row(txt(`\.`))}},
	}
	for _, tt := range tests {
		for rname, rd := range readers(tt.in) {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				got, err := readAll(rd)
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d rows %s, want %d %s", len(got), fmtRows(got), len(tt.want), fmtRows(tt.want))
				}
				for i := range got {
					if !sameRow(got[i], tt.want[i]) {
						t.Fatalf("got %s, want %s", fmtRows(got), fmtRows(tt.want))
					}
				}
				if rd.Rows() != int64(len(tt.want)) {
					t.Errorf("Rows() = %d, want %d", rd.Rows(), len(tt.want))
				}
				// io.EOF is sticky.
				if _, err := rd.Next(nil); err != io.EOF {
					t.Errorf("second Next after end: %v", err)
				}
			})
		}
	}
}

func TestBytes(t *testing.T) {
	in := "a\tb\r\n\\N\nlast"
	rd := NewReader(strings.NewReader(in + "\n\\.\nignored"))
	if _, err := readAll(rd); err != nil {
		t.Fatal(err)
	}
	if want := int64(len(in) + len("\n\\.\n")); rd.Bytes() != want {
		t.Errorf("Bytes() = %d, want %d", rd.Bytes(), want)
	}
	rd = NewReader(strings.NewReader(in))
	var buf []schema.Value
	buf, _ = rd.Next(buf)
	if rd.Bytes() != 5 || rd.Rows() != 1 {
		t.Errorf("after one row: Bytes() = %d, Rows() = %d", rd.Bytes(), rd.Rows())
	}
	_, _ = readAll(rd)
	if rd.Bytes() != int64(len(in)) || rd.Rows() != 3 {
		t.Errorf("at end: Bytes() = %d, Rows() = %d", rd.Bytes(), rd.Rows())
	}
	_ = buf
}

// errFormat is the only shape of error message the Reader may produce for
// malformed input: numbers, no content.
var errFormat = regexp.MustCompile(`^pgcopy: row [0-9]+, column [0-9]+: malformed COPY text: backslash at end of line$`)

func TestDecodeErrors(t *testing.T) {
	const secret = "Jane Doe 1970-01-01"
	tests := []struct {
		name    string
		in      string
		errRow  int    // 1-based line of the error
		wantMsg string // exact message
		after   [][]schema.Value
	}{
		{"lone backslash", secret + "\\\n", 1, "pgcopy: row 1, column 1: malformed COPY text: backslash at end of line", nil},
		{"lone backslash without newline", "ok\n" + secret + "\\", 2, "pgcopy: row 2, column 1: malformed COPY text: backslash at end of line", nil},
		{"lone backslash before crlf", secret + "\\\r\n", 1, "pgcopy: row 1, column 1: malformed COPY text: backslash at end of line", nil},
		{"third column", "1\t" + secret + "\t" + secret + "\\\nnext\n", 1, "pgcopy: row 1, column 3: malformed COPY text: backslash at end of line", [][]schema.Value{row(txt("next"))}},
		{"after escapes", "1\t\\N\t\\t" + secret + "\t\\\\\\\nnext\n", 1, "pgcopy: row 1, column 4: malformed COPY text: backslash at end of line", [][]schema.Value{row(txt("next"))}},
		{"long line", strings.Repeat(secret, 10) + "\\\n", 1, "pgcopy: row 1, column 1: malformed COPY text: backslash at end of line", nil},
	}
	for _, tt := range tests {
		for rname, rd := range readers(tt.in) {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				var err error
				for i := 0; i < tt.errRow; i++ {
					_, err = rd.Next(nil)
				}
				if err == nil {
					t.Fatal("no error")
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("error %v does not wrap ErrMalformed", err)
				}
				if err.Error() != tt.wantMsg {
					t.Errorf("error %q, want %q", err, tt.wantMsg)
				}
				if strings.Contains(err.Error(), "Jane") || strings.Contains(err.Error(), "1970") {
					t.Errorf("error leaks content: %q", err)
				}
				if rd.Rows() != int64(tt.errRow-1) {
					t.Errorf("Rows() = %d", rd.Rows())
				}
				// The malformed line is consumed; reading goes on.
				got, err := readAll(rd)
				if err != nil {
					t.Fatal(err)
				}
				if fmtRows(got) != fmtRows(tt.after) {
					t.Errorf("after error got %s, want %s", fmtRows(got), fmtRows(tt.after))
				}
			})
		}
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	rd := NewReader(io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(boom)))
	if _, err := rd.Next(nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err := rd.Next(nil)
		if !errors.Is(err, boom) || err.Error() != "pgcopy: row 2: read: boom" {
			t.Fatalf("got %v", err)
		}
	}
	// A read error in the middle of a long line.
	rd = newReaderSize(io.MultiReader(strings.NewReader(strings.Repeat("x", 100)), iotest.ErrReader(boom)), 16)
	if _, err := rd.Next(nil); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

// TestLargeField reads 5 MB fields, far beyond the 64 KiB read buffer.
func TestLargeField(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	plain := make([]byte, 5<<20)
	for i := range plain {
		plain[i] = 'a' + byte(rng.IntN(26))
	}
	escaped := bytes.Clone(plain)
	for i := 0; i < len(escaped); i += 1 + rng.IntN(1000) {
		escaped[i] = "\\\n\t\r\b\f\v"[rng.IntN(7)]
	}
	rows := [][]schema.Value{
		row(txt("1"), schema.Bytes(plain), null, txt("x")),
		row(txt("2"), schema.Bytes(escaped), txt("tail\n"), null),
		row(schema.Bytes(escaped)),
		row(txt("3"), txt("small\\")),
	}
	var data []byte
	for _, r := range rows {
		var err error
		if data, err = AppendRow(data, r); err != nil {
			t.Fatal(err)
		}
	}
	for name, rd := range map[string]*Reader{
		"64KiB": NewReader(bytes.NewReader(data)),
		"16B":   newReaderSize(bytes.NewReader(data), 16),
	} {
		t.Run(name, func(t *testing.T) {
			var buf []schema.Value
			for i, want := range rows {
				var err error
				buf, err = rd.Next(buf)
				if err != nil {
					t.Fatal(err)
				}
				if !sameRow(buf, want) {
					t.Fatalf("row %d differs", i+1)
				}
			}
			if _, err := rd.Next(buf); err != io.EOF {
				t.Fatalf("got %v, want io.EOF", err)
			}
			if cap(rd.long) > maxRetained {
				t.Errorf("line buffer of %d bytes retained", cap(rd.long))
			}
			if rd.Bytes() != int64(len(data)) {
				t.Errorf("Bytes() = %d, want %d", rd.Bytes(), len(data))
			}
		})
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name string
		row  []schema.Value
		want string
	}{
		{"empty row", row(), "\n"},
		{"one empty field", row(txt("")), "\n"},
		{"nil text is empty", row(schema.Value{}), "\n"},
		{"two empty fields", row(txt(""), txt("")), "\t\n"},
		{"plain", row(txt("1"), txt("hello"), txt("2024-01-02 03:04:05+00")), "1\thello\t2024-01-02 03:04:05+00\n"},
		{"null", row(null), "\\N\n"},
		{"null text ignored", row(schema.Value{State: schema.Null, Text: []byte("x")}), "\\N\n"},
		{"backslash N string", row(txt(`\N`)), `\\N` + "\n"},
		{"null and empty", row(null, txt(""), null), "\\N\t\t\\N\n"},
		{"backslash", row(txt(`a\b`)), `a\\b` + "\n"},
		{"newline", row(txt("a\nb")), `a\nb` + "\n"},
		{"cr", row(txt("a\rb")), `a\rb` + "\n"},
		{"tab", row(txt("a\tb")), `a\tb` + "\n"},
		{"backspace", row(txt("a\bb")), `a\bb` + "\n"},
		{"form feed", row(txt("a\fb")), `a\fb` + "\n"},
		{"vertical tab", row(txt("a\vb")), `a\vb` + "\n"},
		{"all escapes", row(txt("\\\n\r\t\b\f\v")), `\\\n\r\t\b\f\v` + "\n"},
		{"escapes at ends", row(txt("\tx\t"), txt("\n")), `\tx\t` + "\t" + `\n` + "\n"},
		{"other control chars kept", row(txt("\x00\x01\x1b\x7f")), "\x00\x01\x1b\x7f\n"},
		{"non-ascii kept", row(txt("é€\xff")), "é€\xff\n"},
		{"dot", row(txt(".")), ".\n"},
		{"end marker text", row(txt(`\.`)), `\\.` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			got, err := AppendRow(prefix, tt.row)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix"+tt.want {
				t.Fatalf("got %q, want %q", got[len("prefix"):], tt.want)
			}
			// Decoding gives the row back, except that a zero-column row
			// reads as one empty field.
			want := tt.row
			if len(want) == 0 {
				want = row(txt(""))
			}
			rows, err := readAll(NewReader(strings.NewReader(tt.want)))
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || !sameRow(rows[0], want) {
				t.Fatalf("decoded %s, want %s", fmtRows(rows), fmtRows([][]schema.Value{want}))
			}
		})
	}
}

func TestAppendRowErrors(t *testing.T) {
	dst := []byte("keep")
	out, err := AppendRow(dst, row(txt("secret"), schema.Value{State: schema.Unchanged}))
	if !errors.Is(err, ErrUnchanged) {
		t.Fatalf("got %v", err)
	}
	if err.Error() != "pgcopy: column 2: unchanged TOAST value has no COPY representation" {
		t.Errorf("message %q", err)
	}
	if string(out) != "keep" {
		t.Errorf("dst = %q, want it unchanged", out)
	}
	_, err = AppendRow(nil, row(txt("secret"), schema.Value{State: 9}))
	if err == nil || err.Error() != "pgcopy: column 2: invalid value state 9" {
		t.Errorf("got %v", err)
	}
}
