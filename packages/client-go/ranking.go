package posrelay

import (
	"crypto/sha256"
	"encoding/binary"
	"sort"
)

// Score is a relay's rendezvous weight for key: the first 8 bytes, big-endian,
// of sha256(utf8(relayPeerID) || 0x00 || utf8(key)).
func Score(relayPeerID, key string) uint64 {
	h := sha256.New()
	h.Write([]byte(relayPeerID))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}

// RankRelays orders relays for key (a peer id string) by rendezvous hashing,
// highest score first; equal scores by peer id bytes, ascending. A peer
// reserves on the first N relays ranked for its own id; a dialer ranks the
// same list for its target and knows where to look, without a lookup and
// without connecting to every relay (ENG-1672). The input is not modified.
func RankRelays(relays []Relay, key string) []Relay {
	type scored struct {
		r Relay
		s uint64
	}
	all := make([]scored, len(relays))
	for i, r := range relays {
		all[i] = scored{r, Score(r.PeerID, key)}
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].s != all[j].s {
			return all[i].s > all[j].s
		}
		return all[i].r.PeerID < all[j].r.PeerID // Go compares strings byte-wise
	})
	out := make([]Relay, len(all))
	for i, s := range all {
		out[i] = s.r
	}
	return out
}
