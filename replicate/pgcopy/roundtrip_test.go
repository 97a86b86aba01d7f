package pgcopy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"pgveil/schema"
	"strings"
	"testing"
)

// randomRow returns a row of 1 to 8 columns whose values favour the bytes
// that matter to the format.
func randomRow(rng *rand.Rand) []schema.Value {
	const special = "\\\t\n\r\b\f\v.N0178xXaf\x00é"
	r := make([]schema.Value, 1+rng.IntN(8))
	for i := range r {
		switch rng.IntN(8) {
		case 0:
			r[i] = null
			continue
		case 1:
			r[i] = txt("")
			continue
		case 2:
			r[i] = txt([]string{`\N`, `\.`, ".", "\\", "N", "\r"}[rng.IntN(6)])
			continue
		}
		n := rng.IntN(40)
		if rng.IntN(50) == 0 {
			n = rng.IntN(200_000) // longer than the 64 KiB buffer
		}
		b := make([]byte, n)
		for j := range b {
			switch rng.IntN(4) {
			case 0:
				b[j] = special[rng.IntN(len(special))]
			case 1:
				b[j] = byte(rng.IntN(256))
			default:
				b[j] = 'a' + byte(rng.IntN(26))
			}
		}
		r[i] = schema.Bytes(b)
	}
	return r
}

// TestRoundTrip: random rows -> AppendRow / Writer -> Reader gives the same
// rows, whatever the read buffer size.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	for iter := range 20 {
		rows := make([][]schema.Value, rng.IntN(300))
		var data []byte
		for i := range rows {
			rows[i] = randomRow(rng)
			var err error
			if data, err = AppendRow(data, rows[i]); err != nil {
				t.Fatal(err)
			}
		}
		// The Writer produces the same bytes.
		var out bytes.Buffer
		w := NewWriter(&out)
		for _, r := range rows {
			if err := w.WriteRow(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("iteration %d: Writer output differs from AppendRow", iter)
		}
		for _, size := range []int{16, 100, readBufferSize} {
			rd := newReaderSize(bytes.NewReader(data), size)
			var buf []schema.Value
			for i, want := range rows {
				var err error
				buf, err = rd.Next(buf)
				if err != nil {
					t.Fatalf("iteration %d, size %d, row %d: %v", iter, size, i+1, err)
				}
				if !sameRow(buf, want) {
					t.Fatalf("iteration %d, size %d, row %d: got %s, want %s", iter, size, i+1,
						fmtRows([][]schema.Value{buf}), fmtRows([][]schema.Value{want}))
				}
			}
			if _, err := rd.Next(buf); err != io.EOF {
				t.Fatalf("iteration %d, size %d: got %v, want io.EOF", iter, size, err)
			}
			if rd.Bytes() != int64(len(data)) || rd.Rows() != int64(len(rows)) {
				t.Fatalf("Bytes() = %d, Rows() = %d", rd.Bytes(), rd.Rows())
			}
		}
	}
}

// TestNextDoesNotAllocate checks the steady state of Next, with and without
// escapes.
func TestNextDoesNotAllocate(t *testing.T) {
	data := benchStream(200)
	rd := NewReader(bytes.NewReader(data))
	buf := make([]schema.Value, 0, 16)
	buf, _ = rd.Next(buf) // warm up the scratch buffer
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if buf, err = rd.Next(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Next allocates %.1f times per row", allocs)
	}
}

func TestAppendRowDoesNotAllocate(t *testing.T) {
	r := benchRow()
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf, _ = AppendRow(buf[:0], r)
	})
	if allocs != 0 {
		t.Errorf("AppendRow allocates %.1f times per row", allocs)
	}
}

// countingWriter records the size of each Write.
type countingWriter struct {
	bytes.Buffer
	writes []int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes = append(c.writes, len(p))
	return c.Buffer.Write(p)
}

func TestWriterChunks(t *testing.T) {
	var cw countingWriter
	w := NewWriter(&cw)
	r := benchRow()
	var want []byte
	for range 5000 {
		if err := w.WriteRow(r); err != nil {
			t.Fatal(err)
		}
		want, _ = AppendRow(want, r)
	}
	if cw.Len() == len(want) {
		t.Fatal("nothing buffered before Flush")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil { // nothing left: no write
		t.Fatal(err)
	}
	if !bytes.Equal(cw.Bytes(), want) {
		t.Fatal("output differs")
	}
	for i, n := range cw.writes {
		if n == 0 || (i < len(cw.writes)-1 && n < flushThreshold) {
			t.Errorf("write %d of %d bytes", i, n)
		}
	}
	if len(cw.writes) < 2 {
		t.Errorf("only %d writes", len(cw.writes))
	}
}

func TestWriterRejectsUnchanged(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	if err := w.WriteRow(row(txt("a"))); err != nil {
		t.Fatal(err)
	}
	err := w.WriteRow(row(txt("secret"), null, schema.Value{State: schema.Unchanged}))
	if !errors.Is(err, ErrUnchanged) || err.Error() != "pgcopy: row 2, column 3: unchanged TOAST value has no COPY representation" {
		t.Fatalf("got %v", err)
	}
	// The Writer stays usable and nothing of the rejected row is written.
	if err := w.WriteRow(row(txt("b"))); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "a\nb\n" {
		t.Errorf("got %q", out.String())
	}
}

type failWriter struct {
	n   int // bytes accepted per call
	err error
}

func (f *failWriter) Write(p []byte) (int, error) { return min(f.n, len(p)), f.err }

func TestWriterErrors(t *testing.T) {
	boom := errors.New("boom")
	for _, tt := range []struct {
		name string
		fw   *failWriter
		want error
	}{
		{"error", &failWriter{err: boom}, boom},
		{"short write", &failWriter{n: 1}, io.ErrShortWrite},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWriter(tt.fw)
			if err := w.WriteRow(row(txt("a"))); err != nil {
				t.Fatal(err)
			}
			err := w.Flush()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v", err)
			}
			// Sticky.
			if err := w.WriteRow(row(txt("b"))); !errors.Is(err, tt.want) {
				t.Fatalf("WriteRow after failure: %v", err)
			}
			if err := w.Flush(); !errors.Is(err, tt.want) {
				t.Fatalf("Flush after failure: %v", err)
			}
		})
	}
	// A failure on the automatic flush surfaces from WriteRow.
	w := NewWriter(&failWriter{err: boom})
	big := row(schema.Bytes(bytes.Repeat([]byte("x"), flushThreshold)))
	if err := w.WriteRow(big); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

func TestWriterLargeRow(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	big := bytes.Repeat([]byte("ab\tc"), 2<<20) // 8 MB, 10 MB escaped
	if err := w.WriteRow(row(schema.Bytes(big))); err != nil {
		t.Fatal(err)
	}
	if cap(w.buf) > maxRetained {
		t.Errorf("buffer of %d bytes retained", cap(w.buf))
	}
	if err := w.WriteRow(row(txt("x"))); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rows, err := readAll(NewReader(&out))
	if err != nil || len(rows) != 2 || !bytes.Equal(rows[0][0].Text, big) || string(rows[1][0].Text) != "x" {
		t.Fatalf("round trip failed: %v", err)
	}
}

// refDecode is a deliberately simple byte-by-byte decoder of the same
// format, to check Reader against. It returns one entry per data line: the
// row, or nil for a malformed line.
func refDecode(data []byte) [][]schema.Value {
	var out [][]schema.Value
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if string(line) == `\.` {
			break
		}
		out = append(out, refLine(line))
	}
	return out
}

func refLine(line []byte) []schema.Value {
	isOct := func(c byte) bool { return c >= '0' && c <= '7' }
	var fields []schema.Value
	i := 0
	for {
		start := i
		cur := []byte{}
		for i < len(line) && line[i] != '\t' {
			c := line[i]
			i++
			if c != '\\' {
				cur = append(cur, c)
				continue
			}
			if i == len(line) {
				return nil
			}
			c = line[i]
			i++
			switch {
			case c == 'b':
				c = '\b'
			case c == 'f':
				c = '\f'
			case c == 'n':
				c = '\n'
			case c == 'r':
				c = '\r'
			case c == 't':
				c = '\t'
			case c == 'v':
				c = '\v'
			case isOct(c):
				v := int(c - '0')
				if i < len(line) && isOct(line[i]) {
					v = v*8 + int(line[i]-'0')
					i++
					if i < len(line) && isOct(line[i]) {
						v = v*8 + int(line[i]-'0')
						i++
					}
				}
				c = byte(v % 256)
			case c == 'x' && i < len(line) && unhex(line[i]) >= 0:
				v := unhex(line[i])
				i++
				if i < len(line) && unhex(line[i]) >= 0 {
					v = v*16 + unhex(line[i])
					i++
				}
				c = byte(v)
			}
			cur = append(cur, c)
		}
		if string(line[start:i]) == `\N` {
			fields = append(fields, null)
		} else {
			fields = append(fields, schema.Bytes(cur))
		}
		if i == len(line) {
			return fields
		}
		i++
	}
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"",
		"\n",
		"a\tb\n",
		"a\tb\r\nc\td",
		"\\N\t\\\\N\t\n",
		`\b\f\n\r\t\v\\\0\12\101\777\x4\x41\xg\x\a\.` + "\n",
		"a\\\tb\tc\n",
		"1\tfoo\tb\\tar\t\\N\tbaz\n\\.\nafter\n",
		"bad\\\nok\n",
		"bad\\",
		"\r\n\r\n",
		"a\r",
		"é\x00\xff\t\\é\n",
		string(benchStream(3)),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ref := refDecode(data)
		// 16 bytes sends nearly every line through the long-line path; 4 KiB
		// (like the real 64 KiB, but cheaper per exec) almost none.
		for _, size := range []int{16, 4096} {
			rd := newReaderSize(bytes.NewReader(data), size)
			var buf []schema.Value
			var enc []byte
			var rows [][]schema.Value
			for line := 0; ; line++ {
				var err error
				buf, err = rd.Next(buf)
				if err == io.EOF {
					if line != len(ref) {
						t.Fatalf("size %d: EOF after %d lines, reference has %d", size, line, len(ref))
					}
					break
				}
				if line >= len(ref) {
					t.Fatalf("size %d: line %d beyond the reference's %d (err %v)", size, line+1, len(ref), err)
				}
				if err != nil {
					if !errFormat.MatchString(err.Error()) {
						t.Fatalf("size %d: unexpected error message %q", size, err)
					}
					if ref[line] != nil {
						t.Fatalf("size %d: line %d: error %v, reference decodes it", size, line+1, err)
					}
					continue
				}
				if ref[line] == nil || !sameRow(buf, ref[line]) {
					t.Fatalf("size %d: line %d: got %s, reference %s", size, line+1,
						fmtRows([][]schema.Value{buf}), fmtRows([][]schema.Value{ref[line]}))
				}
				rows = append(rows, cloneRow(buf))
				if enc, err = AppendRow(enc, buf); err != nil {
					t.Fatal(err)
				}
			}
			if rd.Rows() != int64(len(rows)) {
				t.Fatalf("Rows() = %d, want %d", rd.Rows(), len(rows))
			}
			if rd.Bytes() > int64(len(data)) {
				t.Fatalf("Bytes() = %d > %d", rd.Bytes(), len(data))
			}
			// Re-encoding the decoded rows and decoding them again gives
			// the same values.
			again, err := readAll(newReaderSize(bytes.NewReader(enc), 16))
			if err != nil {
				t.Fatalf("size %d: re-encoded rows do not decode: %v", size, err)
			}
			if len(again) != len(rows) {
				t.Fatalf("size %d: re-encoded %d rows, decoded %d", size, len(rows), len(again))
			}
			for i := range rows {
				if !sameRow(again[i], rows[i]) {
					t.Fatalf("size %d: row %d: re-encoded as %q, decodes to %s, want %s", size, i+1, enc,
						fmtRows(again[i:i+1]), fmtRows(rows[i:i+1]))
				}
			}
		}
	})
}

// benchRow is a realistic 10-column row: ids, a uuid, names, an email, a
// timestamp, a numeric, a NULL, a boolean and an address with escapes.
func benchRow() []schema.Value {
	return row(
		txt("1048576"),
		txt("3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b"),
		txt("Jane"),
		txt("O'Donnell-Smith"),
		txt("jane.odonnell@example.com"),
		txt("2024-03-15 14:22:31.123456+00"),
		txt("1234.56"),
		null,
		txt("t"),
		txt("Flat 3\nHigh Street 12\tBuilding \\B\\\nDublin"),
	)
}

// benchStream returns n rows: benchRow with varying ids, and every fourth
// row without the escaped address (so both Reader paths are measured).
func benchStream(n int) []byte {
	var data []byte
	r := benchRow()
	for i := range n {
		r[0] = txt(strings.Repeat("7", 1+i%7))
		if i%4 == 3 {
			r[9] = txt("Flat 3, High Street 12, Dublin")
		} else {
			r[9] = benchRow()[9]
		}
		data, _ = AppendRow(data, r)
	}
	return data
}

func BenchmarkReader(b *testing.B) {
	const rows = 10_000
	data := benchStream(rows)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var buf []schema.Value
	for b.Loop() {
		rd := NewReader(bytes.NewReader(data))
		for {
			var err error
			buf, err = rd.Next(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}

func BenchmarkAppendRow(b *testing.B) {
	r := benchRow()
	buf, _ := AppendRow(nil, r)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendRow(buf[:0], r)
	}
}

func BenchmarkWriter(b *testing.B) {
	r := benchRow()
	enc, _ := AppendRow(nil, r)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	w := NewWriter(io.Discard)
	for b.Loop() {
		if err := w.WriteRow(r); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReaderLongField reads rows with a 1 MB field, through the
// long-line path.
func BenchmarkReaderLongField(b *testing.B) {
	field := bytes.Repeat([]byte("lorem ipsum dolor sit amet\\n"), 1<<20/28)
	var data []byte
	for range 16 {
		data = append(data, "42\t"...)
		data = append(data, field...)
		data = append(data, "\t\\N\n"...)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var buf []schema.Value
	for b.Loop() {
		rd := NewReader(bytes.NewReader(data))
		for {
			var err error
			if buf, err = rd.Next(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
