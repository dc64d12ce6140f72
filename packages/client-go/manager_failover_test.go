package posrelay

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The failover rule (docs/protocol.md section 4) with real relays on
// loopback (helpers in hosts_test.go).

// The failover rule (docs/protocol.md section 4) with real relays: the relay
// the listener lives on dies; the listener reserves on the next relay of its
// ranking at once (not at the next poll), a new dialer whose list still names
// the dead relay reaches it, one discovery refresh follows; the relay comes
// back and the listener moves back, releasing the fallback only once the
// returned relay holds (make-before-break).
func TestManagerFailsOverAtOnceAndMovesBack(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("relayCount %d", n), func(t *testing.T) {
			self := newHost(t)
			var entries []Relay
			byPeer := map[string]*restartableRelay{}
			for i := range 4 {
				r := startRestartableRelay(t)
				e := relayEntry(r.h, fmt.Sprintf("relay-%d", i))
				entries = append(entries, e)
				byPeer[e.PeerID] = r
			}
			var ranked []*restartableRelay
			for _, e := range RankRelays(entries, self.ID().String()) {
				ranked = append(ranked, byPeer[e.PeerID])
			}
			ids := make([]peer.ID, len(ranked))
			for i, r := range ranked {
				ids[i] = r.h.ID()
			}
			disc := newCountingDiscovery(t, entries)

			var m *Manager
			var mu sync.Mutex
			var releasedWhileBackHeld, releasedEarly bool
			m = newManager(t, self, disc.srv.URL, WithRelayCount(n), WithEventHandler(func(e Event) {
				if e.Type != EventReleased {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if e.Relay == ids[n] && m.HasReservation(ids[0]) {
					releasedWhileBackHeld = true
				} else {
					releasedEarly = true
				}
			}))
			ctx := startWithin(t, m, 60*time.Second)
			holdsFirst := func(idx ...int) func() bool {
				return func() bool {
					for _, i := range idx {
						if !m.HasReservation(ids[i]) {
							return false
						}
					}
					return true
				}
			}
			first := make([]int, n)
			for i := range first {
				first[i] = i
			}
			waitUntil(t, ctx, "reservations on the first relays of the ranking", holdsFirst(first...))
			// the listener's polls: a dialer's lookups of the listener carry the same for=, so count before it dials
			pollsBefore := disc.count(self.ID().String())

			ranked[0].kill()
			// the bound (10 s); the move takes well under a second on loopback
			moveCtx, moveCancel := context.WithTimeout(ctx, 10*time.Second)
			defer moveCancel()
			waitUntil(t, moveCtx, "a reservation on the next relay", holdsFirst(n))
			dialer := newHost(t)
			dm := newManager(t, dialer, disc.srv.URL, WithRelayCount(n))
			conn, err := dm.Dial(moveCtx, self.ID())
			if err != nil {
				t.Fatalf("a new dialer (its list names the dead relay) did not reach the listener: %v", err)
			}
			// through a relay the listener holds now: the next ones of its ranking
			through := false
			for _, id := range ids[1 : n+1] {
				through = through || strings.Contains(conn.RemoteMultiaddr().String(), id.String()+"/p2p-circuit")
			}
			if !through {
				t.Errorf("dialed through %s, want one of the relays ranked 2..%d", conn.RemoteMultiaddr(), n+1)
			}
			if u := m.Unusable(); len(u) != 1 || u[0] != ids[0] {
				t.Errorf("unusable %v, want the dead relay only", u)
			}
			// one discovery refresh, scheduled by the failure (the poll interval is 1 min)
			lookups := dm.DialLookups()
			waitUntil(t, ctx, "the refresh a failure schedules", func() bool { return disc.count(self.ID().String()) > pollsBefore+lookups })

			ranked[0].start()
			waitUntil(t, ctx, "the move back to the returned relay", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return releasedWhileBackHeld
			})
			if !holdsFirst(first...)() || m.HasReservation(ids[n]) {
				t.Errorf("after the move back: want reservations on the first %d relays only", n)
			}
			if len(m.Unusable()) != 0 {
				t.Errorf("unusable %v after the relay came back", m.Unusable())
			}
			mu.Lock()
			if releasedEarly {
				t.Error("a relay was released before its replacement held a reservation")
			}
			mu.Unlock()
		})
	}
}

func TestManagerForgetsAFailedRelayMissingFromAFreshList(t *testing.T) {
	self := newHost(t)
	relays, entries := rankedRelays(t, 3, self.ID().String())
	disc := newCountingDiscovery(t, entries)
	m, ctx := startManager(t, self, disc.srv.URL, 30*time.Second, WithRelayCount(1))
	waitUntil(t, ctx, "a reservation on the first relay", func() bool { return m.HasReservation(relays[0].ID()) })
	// the relay dies and leaves discovery's list: the refresh the failure schedules forgets it
	disc.mu.Lock()
	var rest []Relay
	for _, e := range entries {
		if e.PeerID != relays[0].ID().String() {
			rest = append(rest, e)
		}
	}
	disc.relays = rest
	disc.mu.Unlock()
	relays[0].Close()
	waitUntil(t, ctx, "the move to the second relay", func() bool { return m.HasReservation(relays[1].ID()) })
	waitUntil(t, ctx, "the dead relay forgotten", func() bool { return len(m.Unusable()) == 0 && len(m.Relays()) == 2 })
}

// A relay that rejects the renewed ticket would end the reservation when the
// old ticket expires: the listener takes it as a failure and moves at once.
func TestManagerMovesWhenARelayRejectsTheRenewedTicket(t *testing.T) {
	self := newHost(t)
	relays, entries := rankedRelays(t, 2, self.ID().String())
	for i, r := range relays {
		rejectRenewed := i == 0
		answerTickets(r, func(token string) string {
			if rejectRenewed && !strings.HasPrefix(token, "ticket-1-") {
				return `{"status":"REJECTED","reason":"revoked"}`
			}
			return `{"status":"OK"}`
		})
	}
	srv := ticketDiscovery(t, entries, 2*time.Second)
	m, ctx := startManager(t, self, srv.URL, 30*time.Second, WithAPIKey("key"), WithRelayCount(1), WithCheckInterval(100*time.Millisecond))
	waitUntil(t, ctx, "a reservation on the first relay", func() bool { return m.HasReservation(relays[0].ID()) })
	// at 80 % of the ticket's 2 s the renewed ticket is presented and rejected
	waitUntil(t, ctx, "the move to the second relay", func() bool {
		return m.HasReservation(relays[1].ID()) && !m.HasReservation(relays[0].ID())
	})
	if u := m.Unusable(); len(u) != 1 || u[0] != relays[0].ID() {
		t.Errorf("unusable %v, want the relay that rejected the ticket", u)
	}
}
