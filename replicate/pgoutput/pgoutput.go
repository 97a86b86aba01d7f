// Package pgoutput decodes the messages of PostgreSQL's pgoutput logical
// decoding plugin, protocol versions 1 and 2 (streaming of in-progress
// transactions).
//
// Decoding never panics and never allocates per column: tuple data points
// into the message buffer, which stays valid only until the caller reuses
// it. Every malformed message is an error that names the message type and
// what was short, never the bytes themselves (they are personal data).
package pgoutput

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
)

// Message types, as the first byte of a message.
const (
	TypeBegin        = 'B'
	TypeCommit       = 'C'
	TypeOrigin       = 'O'
	TypeRelation     = 'R'
	TypeType         = 'Y'
	TypeInsert       = 'I'
	TypeUpdate       = 'U'
	TypeDelete       = 'D'
	TypeTruncate     = 'T'
	TypeMessage      = 'M'
	TypeStreamStart  = 'S'
	TypeStreamStop   = 'E'
	TypeStreamCommit = 'c'
	TypeStreamAbort  = 'A'
)

// Message is one decoded pgoutput message.
type Message interface {
	// Type is the message's type byte.
	Type() byte
}

// Begin starts a transaction (not streamed).
type Begin struct {
	FinalLSN   pglogrepl.LSN // the commit record's LSN
	CommitTime time.Time
	Xid        uint32
}

// Commit ends a transaction (not streamed).
type Commit struct {
	Flags      uint8
	CommitLSN  pglogrepl.LSN
	EndLSN     pglogrepl.LSN // end of the commit record: where the next transaction starts
	CommitTime time.Time
}

// Origin names the origin of a transaction replayed from elsewhere.
type Origin struct {
	CommitLSN pglogrepl.LSN
	Name      string
}

// Column describes one column of a Relation.
type Column struct {
	Key     bool // part of the replica identity
	Name    string
	TypeOID uint32
	TypeMod int32
}

// Relation describes a table; it precedes the first change of the table
// after a (re)connection or a schema change.
type Relation struct {
	Xid             uint32 // in a stream: the (sub)transaction
	OID             uint32
	Namespace       string
	Name            string
	ReplicaIdentity byte // 'd' default, 'n' nothing, 'f' full, 'i' index
	Columns         []Column
}

// TypeInfo describes a data type used by a following Relation.
type TypeInfo struct {
	Xid       uint32
	OID       uint32
	Namespace string
	Name      string
}

// Tuple column kinds.
const (
	KindNull      = 'n'
	KindUnchanged = 'u' // unchanged TOASTed value: no data
	KindText      = 't'
	KindBinary    = 'b'
)

// TupleColumn is one column value of a tuple.
type TupleColumn struct {
	Kind byte
	Data []byte // points into the message
}

// Tuple is a row's column values, in the Relation's column order.
type Tuple []TupleColumn

// Insert is a new row.
type Insert struct {
	Xid        uint32
	RelationID uint32
	New        Tuple
}

// Update is a changed row. Old is set ('K': the old key columns, others
// null; 'O': the whole old row) when the key changed or the table has
// REPLICA IDENTITY FULL.
type Update struct {
	Xid        uint32
	RelationID uint32
	OldKind    byte // 0, 'K' or 'O'
	Old        Tuple
	New        Tuple
}

// Delete is a removed row: its key ('K') or, with REPLICA IDENTITY FULL,
// the whole old row ('O').
type Delete struct {
	Xid        uint32
	RelationID uint32
	OldKind    byte
	Old        Tuple
}

// Truncate options.
const (
	TruncateCascade         = 1
	TruncateRestartIdentity = 2
)

// Truncate empties one or more tables.
type Truncate struct {
	Xid         uint32
	Options     uint8
	RelationIDs []uint32
}

// LogicalMessage is a pg_logical_emit_message() message.
type LogicalMessage struct {
	Xid           uint32
	Transactional bool
	LSN           pglogrepl.LSN
	Prefix        string
	Content       []byte
}

// StreamStart opens a chunk of a streamed (in-progress) transaction.
type StreamStart struct {
	Xid          uint32
	FirstSegment bool
}

// StreamStop closes a chunk.
type StreamStop struct{}

// StreamCommit commits a streamed transaction.
type StreamCommit struct {
	Xid        uint32
	Flags      uint8
	CommitLSN  pglogrepl.LSN
	EndLSN     pglogrepl.LSN
	CommitTime time.Time
}

// StreamAbort aborts a streamed transaction (SubXid == Xid) or one of its
// subtransactions.
type StreamAbort struct {
	Xid    uint32
	SubXid uint32
}

func (*Begin) Type() byte          { return TypeBegin }
func (*Commit) Type() byte         { return TypeCommit }
func (*Origin) Type() byte         { return TypeOrigin }
func (*Relation) Type() byte       { return TypeRelation }
func (*TypeInfo) Type() byte       { return TypeType }
func (*Insert) Type() byte         { return TypeInsert }
func (*Update) Type() byte         { return TypeUpdate }
func (*Delete) Type() byte         { return TypeDelete }
func (*Truncate) Type() byte       { return TypeTruncate }
func (*LogicalMessage) Type() byte { return TypeMessage }
func (*StreamStart) Type() byte    { return TypeStreamStart }
func (*StreamStop) Type() byte     { return TypeStreamStop }
func (*StreamCommit) Type() byte   { return TypeStreamCommit }
func (*StreamAbort) Type() byte    { return TypeStreamAbort }

// ErrUnknownType is returned for a message type this package does not know.
var ErrUnknownType = errors.New("pgoutput: unknown message type")

// Decoder decodes messages. It reuses tuple storage between calls: a
// decoded message is valid until the next call to Decode.
type Decoder struct {
	cols [3][]TupleColumn // scratch for up to three tuples (old, new)
	n    int
}

// Decode decodes one message. inStream tells whether it arrived between a
// StreamStart and a StreamStop: such messages carry a transaction id.
func (d *Decoder) Decode(data []byte, inStream bool) (Message, error) {
	if len(data) == 0 {
		return nil, errors.New("pgoutput: empty message")
	}
	r := reader{b: data[1:], typ: data[0]}
	d.n = 0
	// Inside a streamed transaction, data messages start with its xid.
	var xid uint32
	if inStream && streamedKinds[data[0]] {
		xid = r.u32()
	}
	var m Message
	switch data[0] {
	case TypeBegin:
		m = &Begin{FinalLSN: r.lsn(), CommitTime: r.time(), Xid: r.u32()}
	case TypeCommit:
		m = &Commit{Flags: r.u8(), CommitLSN: r.lsn(), EndLSN: r.lsn(), CommitTime: r.time()}
	case TypeOrigin:
		m = &Origin{CommitLSN: r.lsn(), Name: r.str()}
	case TypeRelation:
		m = decodeRelation(&r, xid)
	case TypeType:
		m = &TypeInfo{Xid: xid, OID: r.u32(), Namespace: r.str(), Name: r.str()}
	case TypeInsert:
		m = d.decodeInsert(&r, xid)
	case TypeUpdate:
		m = d.decodeUpdate(&r, xid)
	case TypeDelete:
		m = d.decodeDelete(&r, xid)
	case TypeTruncate:
		m = decodeTruncate(&r, xid)
	case TypeMessage:
		lm := &LogicalMessage{Xid: xid, Transactional: r.u8()&1 == 1, LSN: r.lsn(), Prefix: r.str()}
		lm.Content = r.bytes(int(r.u32()))
		m = lm
	case TypeStreamStart:
		m = &StreamStart{Xid: r.u32(), FirstSegment: r.u8() == 1}
	case TypeStreamStop:
		m = &StreamStop{}
	case TypeStreamCommit:
		m = &StreamCommit{Xid: r.u32(), Flags: r.u8(), CommitLSN: r.lsn(), EndLSN: r.lsn(), CommitTime: r.time()}
	case TypeStreamAbort:
		// Protocol 4 adds the abort LSN and time; we ask for 2 and ignore them.
		m = &StreamAbort{Xid: r.u32(), SubXid: r.u32()}
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownType, data[0])
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// streamedKinds are the messages that carry the transaction's xid first
// when they are part of a streamed transaction.
var streamedKinds = map[byte]bool{
	TypeRelation: true, TypeType: true, TypeInsert: true, TypeUpdate: true,
	TypeDelete: true, TypeTruncate: true, TypeMessage: true,
}

func decodeRelation(r *reader, xid uint32) *Relation {
	rel := &Relation{Xid: xid, OID: r.u32(), Namespace: r.str(), Name: r.str(), ReplicaIdentity: r.u8()}
	n := int(r.u16())
	if r.err == nil && n > len(r.b) {
		r.fail("column count")
	}
	if r.err == nil {
		rel.Columns = make([]Column, n)
		for i := range rel.Columns {
			c := &rel.Columns[i]
			c.Key = r.u8()&1 == 1
			c.Name, c.TypeOID, c.TypeMod = r.str(), r.u32(), int32(r.u32())
		}
	}
	return rel
}

func (d *Decoder) decodeInsert(r *reader, xid uint32) *Insert {
	ins := &Insert{Xid: xid, RelationID: r.u32()}
	if k := r.u8(); r.err == nil && k != 'N' {
		r.fail("tuple kind")
	}
	ins.New = d.tuple(r)
	return ins
}

func (d *Decoder) decodeUpdate(r *reader, xid uint32) *Update {
	up := &Update{Xid: xid, RelationID: r.u32()}
	k := r.u8()
	if k == 'K' || k == 'O' {
		up.OldKind = k
		up.Old = d.tuple(r)
		k = r.u8()
	}
	if r.err == nil && k != 'N' {
		r.fail("tuple kind")
	}
	up.New = d.tuple(r)
	return up
}

func (d *Decoder) decodeDelete(r *reader, xid uint32) *Delete {
	del := &Delete{Xid: xid, RelationID: r.u32(), OldKind: r.u8()}
	if r.err == nil && del.OldKind != 'K' && del.OldKind != 'O' {
		r.fail("tuple kind")
	}
	del.Old = d.tuple(r)
	return del
}

func decodeTruncate(r *reader, xid uint32) *Truncate {
	tr := &Truncate{Xid: xid}
	n := int(r.u32())
	tr.Options = r.u8()
	if r.err == nil && n > len(r.b)/4 {
		r.fail("relation count")
	}
	if r.err == nil {
		tr.RelationIDs = make([]uint32, n)
		for i := range tr.RelationIDs {
			tr.RelationIDs[i] = r.u32()
		}
	}
	return tr
}

// tuple decodes TupleData into the decoder's scratch space.
func (d *Decoder) tuple(r *reader) Tuple {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	if n > len(r.b) { // every column takes at least one byte
		r.fail("column count")
		return nil
	}
	slot := d.n % len(d.cols)
	d.n++
	cols := d.cols[slot][:0]
	for range n {
		c := TupleColumn{Kind: r.u8()}
		switch c.Kind {
		case KindNull, KindUnchanged:
		case KindText, KindBinary:
			c.Data = r.bytes(int(r.u32()))
		default:
			if r.err == nil {
				r.fail("column kind")
			}
		}
		if r.err != nil {
			return nil
		}
		cols = append(cols, c)
	}
	d.cols[slot] = cols
	return Tuple(cols)
}

// reader reads big-endian fields, recording the first shortfall.
type reader struct {
	b   []byte
	typ byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("pgoutput: malformed %q message: bad or truncated %s", r.typ, what)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail(what)
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() uint8 {
	if b := r.take(1, "byte"); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.take(2, "int16"); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4, "int32"); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) lsn() pglogrepl.LSN {
	if b := r.take(8, "LSN"); b != nil {
		return pglogrepl.LSN(binary.BigEndian.Uint64(b))
	}
	return 0
}

// pgEpoch is 2000-01-01, from which PostgreSQL counts microseconds.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func (r *reader) time() time.Time {
	if b := r.take(8, "timestamp"); b != nil {
		return pgEpoch.Add(time.Duration(int64(binary.BigEndian.Uint64(b))) * time.Microsecond)
	}
	return time.Time{}
}

func (r *reader) str() string {
	if r.err != nil {
		return ""
	}
	for i, c := range r.b {
		if c == 0 {
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
	}
	r.fail("string")
	return ""
}

func (r *reader) bytes(n int) []byte { return r.take(n, "value") }
