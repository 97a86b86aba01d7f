package pgcopy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"pgveil/schema"
)

// checkRaw holds NextRaw and DecodeField to Next on data, through readers
// of the given buffer size: the same rows, the same errors, each raw field
// decoding to Next's value. With canonical (data as COPY TO or AppendRow
// writes it), each raw field must also be byte for byte what encoding its
// value gives: what the snapshot relies on to pass kept columns through.
func checkRaw(t *testing.T, data []byte, size int, canonical bool) {
	t.Helper()
	want := newReaderSize(bytes.NewReader(data), size)
	rd := newReaderSize(bytes.NewReader(data), size)
	var vals []schema.Value
	var raw [][]byte
	for line := 1; ; line++ {
		var werr, err error
		vals, werr = want.Next(vals)
		raw, err = rd.NextRaw(raw)
		if (werr == nil) != (err == nil) || (werr != nil && werr.Error() != err.Error()) {
			t.Fatalf("size %d, line %d: NextRaw error %v, Next %v", size, line, err, werr)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if !errFormat.MatchString(err.Error()) {
				t.Fatalf("size %d: unexpected error message %q", size, err)
			}
			continue
		}
		if len(raw) != len(vals) {
			t.Fatalf("size %d, line %d: %d raw fields, Next %d", size, line, len(raw), len(vals))
		}
		for i, f := range raw {
			f = bytes.Clone(f)
			v, err := rd.DecodeField(f, i+1)
			if err != nil {
				t.Fatalf("size %d, line %d, column %d: DecodeField: %v", size, line, i+1, err)
			}
			if !sameRow([]schema.Value{v}, vals[i:i+1]) {
				t.Fatalf("size %d, line %d, column %d: DecodeField %s, Next %s", size, line, i+1,
					fmtRows([][]schema.Value{{v}}), fmtRows([][]schema.Value{vals[i : i+1]}))
			}
			if enc, _ := AppendField(nil, v); canonical && !bytes.Equal(enc, f) {
				t.Fatalf("size %d, line %d, column %d: raw %q, encoded again %q", size, line, i+1, f, enc)
			}
		}
	}
	if rd.Rows() != want.Rows() || rd.Bytes() != want.Bytes() {
		t.Fatalf("size %d: Rows, Bytes %d, %d; Next's %d, %d", size, rd.Rows(), rd.Bytes(), want.Rows(), want.Bytes())
	}
}

var rawCases = []string{
	"",
	"\n",
	"a\tb\n",
	"a\tb\r\nc\td",
	"\\N\t\\\\N\t\n",
	"\\N\t\\N\n",
	"\\Nx\tx\\N\t\\N\n",
	`\b\f\n\r\t\v\\\0\12\101\777\x4\x41\xg\x\a\.` + "\n",
	"a\\\tb\tc\n",
	"a\\\t\\\t\tb\\\\\tc\\\\\n",
	"1\tfoo\tb\\tar\t\\N\tbaz\n\\.\nafter\n",
	"bad\\\nok\n",
	"1\t\\N\t\\tx\t\\\\\\\nnext\n",
	"bad\\",
	"\r\n\r\n",
	"a\r",
	"é\x00\xff\t\\é\n",
	"{\"a\\\\\\\\\\\"b\":\"x\\\\ny\"}\t{1,\"a\\\\tb\",NULL}\t\\\\x00ff\t\n",
}

func TestNextRaw(t *testing.T) {
	for _, c := range rawCases {
		for _, size := range []int{16, 4096} {
			checkRaw(t, []byte(c), size, false)
		}
	}
	// Rows written by AppendRow from values full of the format's bytes.
	rng := rand.New(rand.NewPCG(7, 11))
	var data []byte
	for range 2000 {
		var err error
		if data, err = AppendRow(data, randomRow(rng)); err != nil {
			t.Fatal(err)
		}
	}
	checkRaw(t, data, 16, true)
	checkRaw(t, data, 64<<10, true)
}

func TestDecodeFieldErrors(t *testing.T) {
	rd := NewReader(strings.NewReader(""))
	for _, raw := range []string{"Jane\\", "Jane\\\\\tDoe"} {
		_, err := rd.DecodeField([]byte(raw), 3)
		if err == nil || !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: error %v, want ErrMalformed", raw, err)
		}
		if strings.Contains(err.Error(), "Jane") || !strings.Contains(err.Error(), "column 3") {
			t.Fatalf("%q: error %q", raw, err)
		}
	}
}

func TestAppendField(t *testing.T) {
	for _, v := range []schema.Value{txt(""), txt("a\tb\\c\nd"), null, txt(`\N`)} {
		row, _ := AppendRow(nil, []schema.Value{v})
		got, err := AppendField(nil, v)
		if err != nil || string(append(got, '\n')) != string(row) {
			t.Fatalf("AppendField %q (%v), AppendRow %q", got, err, row)
		}
	}
	if _, err := AppendField(nil, schema.Value{State: schema.Unchanged}); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("unchanged: %v", err)
	}
}

func FuzzNextRaw(f *testing.F) {
	for _, s := range rawCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRaw(t, data, 16, false)
		checkRaw(t, data, 4096, false)
	})
}
