package posrelay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-varint"
)

// Test helpers: real go-libp2p hosts on loopback. The relays here are
// go-libp2p's own Circuit Relay v2 service; the pos-relay relay (with tickets)
// is exercised by e2e/test/client-go.test.ts.

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

// testContext: a context that ends after d, cancelled when the test ends.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newManager: a Manager for h against the discovery at url, closed when the
// test ends. t.Cleanup runs last-registered first, so the manager is closed
// before the hosts and httptest servers the test made before it; tests register
// their servers' Close with t.Cleanup (not defer) for the same order.
func newManager(t *testing.T, h host.Host, url string, opts ...Option) *Manager {
	t.Helper()
	m, err := New(h, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// startWithin starts m with a context that ends after d (cancelled before m
// is closed) and returns that context.
func startWithin(t *testing.T, m *Manager, d time.Duration) context.Context {
	t.Helper()
	ctx := testContext(t, d)
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// startManager: newManager, started within d.
func startManager(t *testing.T, h host.Host, url string, d time.Duration, opts ...Option) (*Manager, context.Context) {
	t.Helper()
	m := newManager(t, h, url, opts...)
	return m, startWithin(t, m, d)
}

// answerTickets: h answers each ticket presented on TicketProtocol with the
// status JSON answer returns for it, as the relay does.
func answerTickets(h host.Host, answer func(token string) string) {
	h.SetStreamHandler(TicketProtocol, func(s network.Stream) {
		defer s.Close()
		token, err := readFrame(s)
		if err != nil {
			s.Reset()
			return
		}
		body := answer(string(token))
		s.Write(append(varint.ToUvarint(uint64(len(body))), body...))
	})
}

// ticketDiscovery: a discovery API that lists relays and issues tickets that
// last life to the API key "key".
func ticketDiscovery(t *testing.T, relays []Relay, life time.Duration) *httptest.Server {
	t.Helper()
	var issued atomic.Int32
	tickets := ticketServer(t, "key", life, &issued)
	t.Cleanup(tickets.Close)
	mux := http.NewServeMux()
	mux.Handle("/api/p2p/tickets", tickets.Config.Handler)
	mux.HandleFunc("/api/p2p/relays", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(relays) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}
