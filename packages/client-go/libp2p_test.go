package posrelay

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// Tickets, dialing, reserving and renewing with real go-libp2p hosts on
// loopback (helpers in hosts_test.go).

func TestPresentTicketSpeaksTheVectorsOverAStream(t *testing.T) {
	relay, self := newHost(t), newHost(t)
	var mu sync.Mutex
	var reply []byte
	var got bytes.Buffer
	relay.SetStreamHandler(TicketProtocol, func(s network.Stream) {
		defer s.Close()
		// read the client's frame whole before answering, as the relay does
		buf := make([]byte, 8192)
		n, _ := io.ReadAtLeast(s, buf, 1)
		for n < len(buf) && !frameComplete(buf[:n]) {
			m, err := s.Read(buf[n:])
			n += m
			if err != nil {
				break
			}
		}
		mu.Lock()
		got.Write(buf[:n])
		answer := reply
		mu.Unlock()
		s.Write(answer)
	})
	if err := self.Connect(context.Background(), peer.AddrInfo{ID: relay.ID(), Addrs: relay.Addrs()}); err != nil {
		t.Fatal(err)
	}
	eachVectorFile(t, "tickets.json", func(t *testing.T, cases []ticketCase) {
		for _, c := range cases {
			if c.RequestHex == nil {
				continue
			}
			token := requestToken(t, c)
			r, _ := hex.DecodeString(c.ReplyHex)
			mu.Lock()
			reply = r
			got.Reset()
			mu.Unlock()
			_, err := PresentTicket(context.Background(), self, relay.ID(), token)
			checkTicketOutcome(t, c, err)
			mu.Lock()
			if hex.EncodeToString(got.Bytes()) != *c.RequestHex {
				t.Errorf("%s: wrote %x, want %s", c.Name, got.Bytes(), *c.RequestHex)
			}
			mu.Unlock()
		}
	})
}

func TestDialTriesTheTargetsRankedRelaysUpToNPlusTwo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reserved int // the target's reservation is on the relay of this rank (0-based)
		ok       bool
	}{
		{"first ranked relay", 0, true},
		{"third: the first two refuse (no reservation)", 2, true},
		{"fourth: beyond N + 2 with N = 1", 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, dialer := newHost(t), newHost(t)
			relays, entries := rankedRelays(t, 5, target.ID().String())
			srv := discovery(t, entries)
			r := relays[tc.reserved]
			if _, err := client.Reserve(context.Background(), target, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
				t.Fatal(err)
			}
			m := newManager(t, dialer, srv.URL, WithRelayCount(1))
			ctx := testContext(t, 30*time.Second)
			conn, err := m.Dial(ctx, target.ID())
			if !tc.ok {
				if !errors.Is(err, ErrDialFailed) {
					t.Fatalf("got %v, want ErrDialFailed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if conn.RemotePeer() != target.ID() {
				t.Fatalf("got a connection to %s, want one to the target", conn.RemotePeer())
			}
			want := r.ID().String() + "/p2p-circuit"
			if !strings.Contains(conn.RemoteMultiaddr().String(), want) {
				t.Errorf("went through %s, want a circuit through the relay holding the reservation", conn.RemoteMultiaddr())
			}
		})
	}
}

func TestManagerReservesOnTheTopNAndReReservesAfterADrop(t *testing.T) {
	self := newHost(t)
	relays, entries := rankedRelays(t, 4, self.ID().String())
	srv := discovery(t, entries)
	var reserved, lost atomic.Int32
	m, ctx := startManager(t, self, srv.URL, 30*time.Second, WithRelayCount(2), WithCheckInterval(100*time.Millisecond), WithEventHandler(func(e Event) {
		switch e.Type {
		case EventReserved:
			reserved.Add(1)
		case EventReservationLost:
			lost.Add(1)
		}
	}))
	waitUntil(t, ctx, "reservations on the top 2", func() bool { return m.HasReservation(relays[0].ID()) && m.HasReservation(relays[1].ID()) })
	chosen := m.Chosen()
	if len(chosen) != 2 || chosen[0].PeerID != relays[0].ID().String() || chosen[1].PeerID != relays[1].ID().String() {
		t.Fatalf("chosen %v, want the two ranked first", chosen)
	}
	if m.HasReservation(relays[2].ID()) || len(m.CircuitAddrs()) != 2 {
		t.Errorf("circuit addrs %v, want one per reserved relay", m.CircuitAddrs())
	}
	before := reserved.Load()
	// the relay drops us (restart, network blip): the manager reconnects and reserves again
	relays[0].Network().ClosePeer(self.ID())
	waitUntil(t, ctx, "the reservation lost", func() bool { return lost.Load() >= 1 })
	waitUntil(t, ctx, "reserved again", func() bool { return reserved.Load() > before && m.HasReservation(relays[0].ID()) })
	// and another peer can reach us through it
	other := newHost(t)
	od := newManager(t, other, srv.URL, WithRelayCount(2))
	if _, err := od.Dial(ctx, self.ID()); err != nil {
		t.Fatal(err)
	}
}

func TestManagerRenewsTicketsAndReservationsAtEightyPercent(t *testing.T) {
	self := newHost(t)
	// a relay whose reservations last 2 s, that wants a ticket first
	relay := newHost(t)
	rc := relayv2.DefaultResources()
	rc.ReservationTTL = 2 * time.Second
	svc, err := relayv2.New(relay, relayv2.WithResources(rc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	var mu sync.Mutex
	var presented []string
	answerTickets(relay, func(token string) string {
		mu.Lock()
		presented = append(presented, token)
		mu.Unlock()
		return `{"status":"OK"}`
	})
	srv := ticketDiscovery(t, []Relay{relayEntry(relay, "r")}, 2*time.Second)

	var reserved atomic.Int32
	m, ctx := startManager(t, self, srv.URL, 30*time.Second, WithAPIKey("key"), WithRelayCount(1), WithCheckInterval(100*time.Millisecond),
		WithEventHandler(func(e Event) {
			if e.Type == EventReserved {
				reserved.Add(1)
			}
		}))
	// after 80 % of 2 s: a second ticket, presented on the same connection, and a renewed reservation
	waitUntil(t, ctx, "a renewed ticket presented and the reservation renewed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(presented) >= 2 && reserved.Load() >= 2
	})
	mu.Lock()
	first, second := presented[0], presented[1]
	mu.Unlock()
	if first == second || !strings.HasPrefix(first, "ticket-1-") || !strings.HasPrefix(second, "ticket-2-") {
		t.Errorf("presented %q then %q, want ticket 1 then ticket 2", first, second)
	}
	if !m.HasReservation(relay.ID()) {
		t.Error("no reservation after renewal")
	}
}
