package transform

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
)

// MinSecretLen is the shortest secret accepted, in bytes.
const MinSecretLen = 32

// ErrShortSecret is returned by NewKeys for a secret under MinSecretLen bytes.
var ErrShortSecret = errors.New("secret must be at least 32 bytes")

// Keys holds the keys every transformer derives from the one secret. Each
// use (hash, fake, noise, permutation) has its own key, derived with
// HMAC-SHA256(secret, label), so outputs of one never reveal another's.
// Keys is safe for concurrent use.
type Keys struct {
	hash  keyedHash // text, bytea and large-numeric hashes
	fake  keyedHash // seeds of fake values
	noise keyedHash // noise offsets
	perm  [2]uint64 // SipHash key of the permutations
	ints  *intPRPs  // the integer bands' permutations, built once
	uuids *uuidPRP
}

// NewKeys derives the keys from the secret. The secret is not kept.
func NewKeys(secret []byte) (*Keys, error) {
	if len(secret) < MinSecretLen {
		return nil, ErrShortSecret
	}
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("pgveil/v1/" + label))
		return m.Sum(nil)
	}
	k := &Keys{}
	k.hash.init(derive("hash"))
	k.fake.init(derive("fake"))
	k.noise.init(derive("noise"))
	p := derive("permutation")
	k.perm = [2]uint64{binary.LittleEndian.Uint64(p[:8]), binary.LittleEndian.Uint64(p[8:16])}
	k.ints = newIntPRPs(k.perm)
	k.uuids = newUUIDPRP(k.perm)
	return k, nil
}

// keyedHash computes HMAC-SHA256 under one key, reusing hash states.
type keyedHash struct {
	pool sync.Pool
}

type hmacState struct {
	h   hash.Hash
	sum [sha256.Size]byte
	// buf carries the data into h: passed to the interface directly, a
	// caller's stack array (a noise draw's message) would escape to the
	// heap at every call (issue 20).
	buf [128]byte
}

func (k *keyedHash) init(key []byte) {
	k.pool.New = func() any { return &hmacState{h: hmac.New(sha256.New, key)} }
}

// sum returns HMAC-SHA256(key, data).
func (k *keyedHash) sum(data []byte) [sha256.Size]byte {
	s := k.pool.Get().(*hmacState)
	s.h.Reset()
	for len(data) > 0 {
		n := copy(s.buf[:], data)
		s.h.Write(s.buf[:n])
		data = data[n:]
	}
	s.h.Sum(s.sum[:0])
	out := s.sum
	k.pool.Put(s)
	return out
}
