package posrelay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-varint"
)

// Real go-libp2p hosts on loopback. The relays here are go-libp2p's own
// Circuit Relay v2 service; the pos-relay relay (with tickets) is exercised by
// e2e/test/client-go.test.ts.

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.EnableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func newRelay(t *testing.T) host.Host {
	t.Helper()
	h := newHost(t)
	r, err := relayv2.New(h, relayv2.WithInfiniteLimits())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return h
}

func relayEntry(h host.Host, id string) Relay {
	r := Relay{ID: id, PeerID: h.ID().String()}
	for _, a := range h.Addrs() {
		r.Addrs = append(r.Addrs, a.String()+"/p2p/"+h.ID().String())
	}
	return r
}

// discovery serves relays as GET /api/p2p/relays.
func discovery(t *testing.T, relays []Relay) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/p2p/relays" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(relays)
	}))
	t.Cleanup(srv.Close)
	return srv
}

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

// frameComplete: b holds a whole varint-length-prefixed message
func frameComplete(b []byte) bool {
	n, size, err := varint.FromUvarint(b)
	return err == nil && uint64(len(b)-size) >= n
}

// rankedRelays starts n relays and returns them in rank order for key.
func rankedRelays(t *testing.T, n int, key string) ([]host.Host, []Relay) {
	t.Helper()
	hosts := map[string]host.Host{}
	var entries []Relay
	for i := range n {
		h := newRelay(t)
		e := relayEntry(h, "relay-"+string(rune('a'+i)))
		hosts[e.PeerID] = h
		entries = append(entries, e)
	}
	ranked := RankRelays(entries, key)
	out := make([]host.Host, n)
	for i, r := range ranked {
		out[i] = hosts[r.PeerID]
	}
	return out, entries
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
			m, err := New(dialer, srv.URL, WithRelayCount(1))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
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
	m, err := New(self, srv.URL, WithRelayCount(2), WithCheckInterval(100*time.Millisecond), WithEventHandler(func(e Event) {
		switch e.Type {
		case EventReserved:
			reserved.Add(1)
		case EventReservationLost:
			lost.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
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
	od, err := New(other, srv.URL, WithRelayCount(2))
	if err != nil {
		t.Fatal(err)
	}
	defer od.Close()
	if _, err := od.Dial(ctx, self.ID()); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
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
	relay.SetStreamHandler(TicketProtocol, func(s network.Stream) {
		defer s.Close()
		token, err := readFrame(s)
		if err != nil {
			s.Reset()
			return
		}
		mu.Lock()
		presented = append(presented, string(token))
		mu.Unlock()
		s.Write(append(varint.ToUvarint(15), `{"status":"OK"}`...))
	})
	var issued atomic.Int32
	tickets := ticketServer(t, "key", 2*time.Second, &issued)
	defer tickets.Close()
	mux := http.NewServeMux()
	mux.Handle("/api/p2p/tickets", tickets.Config.Handler)
	mux.HandleFunc("/api/p2p/relays", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]Relay{relayEntry(relay, "r")})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var reserved atomic.Int32
	m, err := New(self, srv.URL, WithAPIKey("key"), WithRelayCount(1), WithCheckInterval(100*time.Millisecond),
		WithEventHandler(func(e Event) {
			if e.Type == EventReserved {
				reserved.Add(1)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
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

func readFrame(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	n, err := varint.ReadUvarint(br)
	if err != nil || n > MaxTicketBytes {
		return nil, errors.New("bad frame")
	}
	b := make([]byte, n)
	_, err = io.ReadFull(br, b)
	return b, err
}

// restartableRelay is a relay host that can be killed and started again with
// the same identity and address, as a relay process restarting.
type restartableRelay struct {
	t    *testing.T
	priv crypto.PrivKey
	addr string
	h    host.Host
	svc  *relayv2.Relay
}

func startRestartableRelay(t *testing.T) *restartableRelay {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &restartableRelay{t: t, priv: priv, addr: "/ip4/127.0.0.1/tcp/0"}
	r.start()
	r.addr = r.h.Addrs()[0].String()
	t.Cleanup(r.kill)
	return r
}

func (r *restartableRelay) start() {
	r.t.Helper()
	h, err := libp2p.New(
		libp2p.Identity(r.priv),
		libp2p.ListenAddrStrings(r.addr),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		r.t.Fatal(err)
	}
	svc, err := relayv2.New(h, relayv2.WithInfiniteLimits())
	if err != nil {
		r.t.Fatal(err)
	}
	r.h, r.svc = h, svc
}

// kill closes the relay's host: its connections close, as when the process dies.
func (r *restartableRelay) kill() {
	if r.h != nil {
		r.svc.Close()
		r.h.Close()
		r.h = nil
	}
}

// countingDiscovery serves *relays (changeable under mu), the whole list as an
// older discovery would, and counts the requests by their ?for= peer id.
type countingDiscovery struct {
	mu       sync.Mutex
	relays   []Relay
	requests map[string]int
	srv      *httptest.Server
}

func newCountingDiscovery(t *testing.T, relays []Relay) *countingDiscovery {
	d := &countingDiscovery{relays: relays, requests: map[string]int{}}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.requests[r.URL.Query().Get("for")]++
		list := d.relays
		d.mu.Unlock()
		json.NewEncoder(w).Encode(list)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// count: the requests with ?for=<forID> (a listener's polls; a dialer's lookups of that target)
func (d *countingDiscovery) count(forID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests[forID]
}

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
			m, err := New(self, disc.srv.URL, WithRelayCount(n), WithEventHandler(func(e Event) {
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
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := m.Start(ctx); err != nil {
				t.Fatal(err)
			}
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
			dm, err := New(dialer, disc.srv.URL, WithRelayCount(n))
			if err != nil {
				t.Fatal(err)
			}
			defer dm.Close()
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
	m, err := New(self, disc.srv.URL, WithRelayCount(1))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
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
	reply := func(s network.Stream, body string) { s.Write(append(varint.ToUvarint(uint64(len(body))), body...)) }
	for i, r := range relays {
		rejectRenewed := i == 0
		r.SetStreamHandler(TicketProtocol, func(s network.Stream) {
			defer s.Close()
			token, err := readFrame(s)
			if err != nil {
				s.Reset()
				return
			}
			if rejectRenewed && !strings.HasPrefix(string(token), "ticket-1-") {
				reply(s, `{"status":"REJECTED","reason":"revoked"}`)
				return
			}
			reply(s, `{"status":"OK"}`)
		})
	}
	var issued atomic.Int32
	tickets := ticketServer(t, "key", 2*time.Second, &issued)
	defer tickets.Close()
	mux := http.NewServeMux()
	mux.Handle("/api/p2p/tickets", tickets.Config.Handler)
	mux.HandleFunc("/api/p2p/relays", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(entries) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	m, err := New(self, srv.URL, WithAPIKey("key"), WithRelayCount(1), WithCheckInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "a reservation on the first relay", func() bool { return m.HasReservation(relays[0].ID()) })
	// at 80 % of the ticket's 2 s the renewed ticket is presented and rejected
	waitUntil(t, ctx, "the move to the second relay", func() bool {
		return m.HasReservation(relays[1].ID()) && !m.HasReservation(relays[0].ID())
	})
	if u := m.Unusable(); len(u) != 1 || u[0] != relays[0].ID() {
		t.Errorf("unusable %v, want the relay that rejected the ticket", u)
	}
}
