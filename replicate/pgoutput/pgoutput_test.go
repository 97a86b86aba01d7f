package pgoutput

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// wire builds messages byte by byte, as the server sends them.
type wire []byte

func msg(t byte) wire              { return wire{t} }
func (w wire) u8(v uint8) wire     { return append(w, v) }
func (w wire) u16(v uint16) wire   { return binary.BigEndian.AppendUint16(w, v) }
func (w wire) u32(v uint32) wire   { return binary.BigEndian.AppendUint32(w, v) }
func (w wire) u64(v uint64) wire   { return binary.BigEndian.AppendUint64(w, v) }
func (w wire) str(s string) wire   { return append(append(w, s...), 0) }
func (w wire) text(s string) wire  { return append(w.u8('t').u32(uint32(len(s))), s...) }
func (w wire) ts(t time.Time) wire { return w.u64(uint64(t.Sub(pgEpoch).Microseconds())) }
func (w wire) tuple(cols ...any) wire {
	w = w.u16(uint16(len(cols)))
	for _, c := range cols {
		switch c := c.(type) {
		case nil:
			w = w.u8('n')
		case byte:
			w = w.u8(c) // 'u'
		case string:
			w = w.text(c)
		}
	}
	return w
}

var when = time.Date(2026, 11, 23, 12, 0, 0, 123456000, time.UTC)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		data     wire
		inStream bool
		want     Message
	}{
		{"begin", msg('B').u64(0x16B3748).ts(when).u32(771), false,
			&Begin{FinalLSN: 0x16B3748, CommitTime: when, Xid: 771}},
		{"commit", msg('C').u8(0).u64(0x100).u64(0x130).ts(when), false,
			&Commit{CommitLSN: 0x100, EndLSN: 0x130, CommitTime: when}},
		{"origin", msg('O').u64(5).str("node1"), false, &Origin{CommitLSN: 5, Name: "node1"}},
		{"relation", msg('R').u32(16384).str("public").str("Customers").u8('d').u16(2).
			u8(1).str("id").u32(20).u32(0xffffffff).
			u8(0).str("e mail").u32(1043).u32(24), false,
			&Relation{OID: 16384, Namespace: "public", Name: "Customers", ReplicaIdentity: 'd', Columns: []Column{
				{Key: true, Name: "id", TypeOID: 20, TypeMod: -1}, {Name: "e mail", TypeOID: 1043, TypeMod: 24}}}},
		{"relation in stream", msg('R').u32(900).u32(1).str("s").str("t").u8('f').u16(0), true,
			&Relation{Xid: 900, OID: 1, Namespace: "s", Name: "t", ReplicaIdentity: 'f', Columns: []Column{}}},
		{"type", msg('Y').u32(16500).str("public").str("mood"), false, &TypeInfo{OID: 16500, Namespace: "public", Name: "mood"}},
		{"insert", msg('I').u32(16384).u8('N').tuple("1", nil, "héllo"), false,
			&Insert{RelationID: 16384, New: Tuple{{Kind: 't', Data: []byte("1")}, {Kind: 'n'}, {Kind: 't', Data: []byte("héllo")}}}},
		{"insert in stream", msg('I').u32(901).u32(7).u8('N').tuple("x"), true,
			&Insert{Xid: 901, RelationID: 7, New: Tuple{{Kind: 't', Data: []byte("x")}}}},
		{"update new only, unchanged toast", msg('U').u32(7).u8('N').tuple("1", byte('u')), false,
			&Update{RelationID: 7, New: Tuple{{Kind: 't', Data: []byte("1")}, {Kind: 'u'}}}},
		{"update key change", msg('U').u32(7).u8('K').tuple("1", nil).u8('N').tuple("2", "b"), false,
			&Update{RelationID: 7, OldKind: 'K', Old: Tuple{{Kind: 't', Data: []byte("1")}, {Kind: 'n'}}, New: Tuple{{Kind: 't', Data: []byte("2")}, {Kind: 't', Data: []byte("b")}}}},
		{"update full old", msg('U').u32(7).u8('O').tuple("1", "a").u8('N').tuple("1", "b"), false,
			&Update{RelationID: 7, OldKind: 'O', Old: Tuple{{Kind: 't', Data: []byte("1")}, {Kind: 't', Data: []byte("a")}}, New: Tuple{{Kind: 't', Data: []byte("1")}, {Kind: 't', Data: []byte("b")}}}},
		{"delete", msg('D').u32(7).u8('K').tuple("1", nil), false,
			&Delete{RelationID: 7, OldKind: 'K', Old: Tuple{{Kind: 't', Data: []byte("1")}, {Kind: 'n'}}}},
		{"truncate", msg('T').u32(2).u8(TruncateCascade | TruncateRestartIdentity).u32(7).u32(8), false,
			&Truncate{Options: 3, RelationIDs: []uint32{7, 8}}},
		{"message", msg('M').u8(1).u64(9).str("pfx").u32(3).str("ab")[:0], false, nil},
		{"stream start", msg('S').u32(900).u8(1), false, &StreamStart{Xid: 900, FirstSegment: true}},
		{"stream stop", msg('E'), false, &StreamStop{}},
		{"stream commit", msg('c').u32(900).u8(0).u64(0x200).u64(0x230).ts(when), false,
			&StreamCommit{Xid: 900, CommitLSN: 0x200, EndLSN: 0x230, CommitTime: when}},
		{"stream abort", msg('A').u32(900).u32(905), false, &StreamAbort{Xid: 900, SubXid: 905}},
	} {
		if tc.want == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			got, err := d.Decode(tc.data, tc.inStream)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			// Every proper prefix is malformed: an error, never a panic.
			for n := 1; n < len(tc.data); n++ {
				if _, err := d.Decode(tc.data[:n], tc.inStream); err == nil && tc.data[0] != 'E' {
					t.Errorf("prefix of %d bytes decoded without error", n)
				}
			}
		})
	}
}

func TestDecodeLogicalMessage(t *testing.T) {
	var d Decoder
	m, err := d.Decode(msg('M').u8(1).u64(9).str("pfx").u32(2).u8('h').u8('i'), false)
	if err != nil {
		t.Fatal(err)
	}
	if lm := m.(*LogicalMessage); !lm.Transactional || lm.Prefix != "pfx" || string(lm.Content) != "hi" || lm.LSN != pglogrepl.LSN(9) {
		t.Errorf("%+v", lm)
	}
}

func TestDecodeErrorsNeverHoldData(t *testing.T) {
	var d Decoder
	for _, data := range []wire{
		msg('I').u32(7).u8('N').u16(1).u8('t').u32(1000).str("SECRET-CANARY"),
		msg('I').u32(7).u8('X'),
		msg('U').u32(7).u8('N').u16(1).u8('z'),
		msg('R').u32(1).str("public").str("t").u8('d').u16(60000),
		msg('T').u32(1 << 30).u8(0),
		msg('Z'),
		{},
	} {
		_, err := d.Decode(data, false)
		if err == nil {
			t.Errorf("%q: no error", data)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error holds data: %v", err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []wire{
		msg('B').u64(1).ts(when).u32(2), msg('C').u8(0).u64(1).u64(2).ts(when),
		msg('R').u32(1).str("public").str("t").u8('d').u16(1).u8(1).str("id").u32(20).u32(0),
		msg('I').u32(1).u8('N').tuple("1", nil), msg('U').u32(1).u8('K').tuple("1").u8('N').tuple("2"),
		msg('D').u32(1).u8('O').tuple("1"), msg('T').u32(1).u8(1).u32(1), msg('S').u32(1).u8(0),
		msg('c').u32(1).u8(0).u64(1).u64(2).ts(when), msg('A').u32(1).u32(2), msg('Y').u32(1).str("a").str("b"),
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, inStream bool) {
		var d Decoder
		_, _ = d.Decode(data, inStream)
	})
}

func BenchmarkDecodeInsert(b *testing.B) {
	data := msg('I').u32(16384).u8('N').tuple("123456", "alice@example.com", "Alice Smith", "+33612345678", "1984-07-12",
		"75011", "enterprise", "2024-03-15 13:45:12.123456+00", "1520.75", nil)
	var d Decoder
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(data, false); err != nil {
			b.Fatal(err)
		}
	}
}
