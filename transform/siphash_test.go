package transform

import (
	"encoding/binary"
	"testing"
)

// The reference vectors of the SipHash paper: key 00..0f, message 00..(n-1).
func TestSipHashVectors(t *testing.T) {
	var key [16]byte
	for i := range key {
		key[i] = byte(i)
	}
	k0, k1 := binary.LittleEndian.Uint64(key[:8]), binary.LittleEndian.Uint64(key[8:])
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, tc := range []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{1, 0x74f839c593dc67fd},
		{7, 0xab0200f58b01d137},
		{8, 0x93f5f5799a932462},
		{15, 0xa129ca6149be45e5},
		{63, 0x958a324ceb064572},
	} {
		if got := siphash24(k0, k1, msg[:tc.n]); got != tc.want {
			t.Errorf("siphash(%d bytes) = %#x, want %#x", tc.n, got, tc.want)
		}
	}
}
