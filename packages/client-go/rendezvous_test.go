package posrelay

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
)

// Server-side rendezvous (docs/protocol.md section 1): a listener polls the
// relays ranked for its own id, a dialer looks up the target's, both with
// count = RankedCount(N), and each ranks what it gets, so an older discovery's
// whole list works the same.

// rankingDiscovery answers GET /api/p2p/relays?for=&count= as discovery does
// (the count relays ranked first for the peer, default 3), or, older, the
// whole list whatever the query; it records each request's query and answers
// 503 to lookups for the peers in fail.
type rankingDiscovery struct {
	mu      sync.Mutex
	relays  []Relay
	older   bool
	fail    map[string]bool
	queries []string
	srv     *httptest.Server
}

func newRankingDiscovery(t *testing.T, relays []Relay, older bool) *rankingDiscovery {
	t.Helper()
	d := &rankingDiscovery{relays: relays, older: older, fail: map[string]bool{}}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/p2p/relays" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		d.mu.Lock()
		d.queries = append(d.queries, r.URL.RawQuery)
		fail := d.fail[q.Get("for")]
		d.mu.Unlock()
		if fail {
			http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		list := d.relays
		if key := q.Get("for"); key != "" && !d.older {
			count := 3
			if c, err := strconv.Atoi(q.Get("count")); err == nil {
				count = c
			}
			list = RankRelays(list, key)[:min(count, len(list))]
		}
		json.NewEncoder(w).Encode(list)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// seen: the queries recorded so far, from index from on
func (d *rankingDiscovery) seen(from int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.queries[min(from, len(d.queries)):]...)
}

func TestFetchRelaysAsksForThePeersRankedRelays(t *testing.T) {
	d := newRankingDiscovery(t, []Relay{}, false)
	ctx := context.Background()
	for _, c := range []struct {
		opts FetchOptions
		want string
	}{
		{FetchOptions{}, ""},
		{FetchOptions{For: "12D3KooWabc", Count: 4}, "count=4&for=12D3KooWabc"},
		{FetchOptions{For: "12D3KooWabc", Count: 40}, "count=16&for=12D3KooWabc"},
		{FetchOptions{For: "12D3KooWabc"}, "for=12D3KooWabc"},
		{FetchOptions{Count: 4}, ""},
	} {
		from := len(d.seen(0))
		if _, err := FetchRelays(ctx, d.srv.URL, c.opts); err != nil {
			t.Fatal(err)
		}
		if got := d.seen(from); len(got) != 1 || got[0] != c.want {
			t.Errorf("%+v: asked %q, want %q", c.opts, got, c.want)
		}
	}
	for n, want := range map[int]int{1: 3, 2: 4, 14: 16, 100: 16} {
		if got := RankedCount(n); got != want {
			t.Errorf("RankedCount(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestListenerPollsForItsOwnIDAndADialLooksUpTheTarget(t *testing.T) {
	for _, older := range []bool{false, true} {
		t.Run(map[bool]string{false: "ranked answers", true: "older discovery: the whole list"}[older], func(t *testing.T) {
			self, dialer := newHost(t), newHost(t)
			// 5 relays, N = 1: each answer holds the 3 ranked first, the whole list when older
			relays, entries := rankedRelays(t, 5, self.ID().String())
			d := newRankingDiscovery(t, entries, older)
			m, ctx := startManager(t, self, d.srv.URL, 30*time.Second, WithRelayCount(1))
			waitUntil(t, ctx, "a reservation on the relay ranked first", func() bool { return m.HasReservation(relays[0].ID()) })
			want := map[bool]int{false: 3, true: 5}[older]
			if got := len(m.Relays()); got != want {
				t.Errorf("the listener knows %d relays, want %d", got, want)
			}
			polls := d.seen(0)
			dm := newManager(t, dialer, d.srv.URL, WithRelayCount(1))
			conn, err := dm.Dial(ctx, self.ID())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(conn.RemoteMultiaddr().String(), relays[0].ID().String()+"/p2p-circuit") {
				t.Errorf("dialed through %s, want the relay ranked first for the listener", conn.RemoteMultiaddr())
			}
			own := "count=3&for=" + self.ID().String()
			for _, q := range polls {
				if q != own {
					t.Errorf("the listener asked %q, want %q", q, own)
				}
			}
			if lookups := d.seen(len(polls)); len(lookups) != 1 || lookups[0] != own || dm.DialLookups() != 1 {
				t.Errorf("the dial asked %q (%d lookups), want one %q", lookups, dm.DialLookups(), own)
			}
		})
	}
}

func TestDialFallsBackToTheLastPolledListWhenTheLookupFails(t *testing.T) {
	target, dialer := newHost(t), newHost(t)
	// 3 relays, N = 1: count 3 covers them all, so the dialer's own list names the target's relays
	relays, entries := rankedRelays(t, 3, target.ID().String())
	d := newRankingDiscovery(t, entries, false)
	d.fail[target.ID().String()] = true
	r := relays[0]
	if _, err := client.Reserve(context.Background(), target, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var failures []error
	dm := newManager(t, dialer, d.srv.URL, WithRelayCount(1), WithEventHandler(func(e Event) {
		if e.Type == EventDiscoveryFailed {
			mu.Lock()
			failures = append(failures, e.Err)
			mu.Unlock()
		}
	}))
	ctx := testContext(t, 30*time.Second)
	// no list polled yet: nothing to fall back on
	if _, err := dm.Dial(ctx, target.ID()); !errors.Is(err, ErrNoRelays) || !errors.Is(err, ErrDiscovery) {
		t.Fatalf("got %v, want ErrNoRelays wrapping the lookup's ErrDiscovery", err)
	}
	if err := dm.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := dm.Dial(ctx, target.ID())
	if err != nil {
		t.Fatalf("the dial did not fall back to the polled list: %v", err)
	}
	if !strings.Contains(conn.RemoteMultiaddr().String(), r.ID().String()+"/p2p-circuit") {
		t.Errorf("dialed through %s, want the relay ranked first for the target", conn.RemoteMultiaddr())
	}
	mu.Lock()
	defer mu.Unlock()
	var status *HTTPStatusError
	if len(failures) != 2 || !errors.As(failures[1], &status) || status.Status != http.StatusServiceUnavailable {
		t.Errorf("discovery_failed events %v, want one per failed lookup (503)", failures)
	}
	if dm.DialLookups() != 2 {
		t.Errorf("%d lookups, want 2", dm.DialLookups())
	}
}
