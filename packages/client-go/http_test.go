package posrelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestFetchRelaysBoundsTheBody(t *testing.T) {
	big := "[" + strings.Repeat(`{"id":"x","peer_id":"y","addrs":[]},`, 40000) + "{}]"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/declared/api/p2p/relays":
			w.Write([]byte(big))
		case "/chunked/api/p2p/relays":
			// no Content-Length: the cap must hold while reading
			w.(http.Flusher).Flush()
			for range 100 {
				w.Write([]byte(big[:len(big)/100]))
			}
		case "/down/api/p2p/relays":
			http.Error(w, `{"error":"redis down"}`, http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, path := range []string{"/declared", "/chunked"} {
		_, err := FetchRelays(ctx, srv.URL+path, FetchOptions{MaxBodyBytes: 64 << 10})
		if !errors.Is(err, ErrResponseTooLarge) || !errors.Is(err, ErrDiscovery) {
			t.Errorf("%s: got %v, want ErrResponseTooLarge and ErrDiscovery", path, err)
		}
	}
	_, err := FetchRelays(ctx, srv.URL+"/down/", FetchOptions{})
	var status *HTTPStatusError
	if !errors.Is(err, ErrDiscovery) || !errors.As(err, &status) || status.Status != 503 {
		t.Errorf("got %v, want an HTTPStatusError 503 matching ErrDiscovery", err)
	}
	if _, err := FetchRelays(ctx, "ftp://example.invalid", FetchOptions{}); !errors.Is(err, ErrDiscovery) {
		t.Errorf("bad scheme: got %v", err)
	}
}

// a discovery API's ticket route as packages/discovery answers it, with a lifetime of life
func ticketServer(t *testing.T, apiKey string, life time.Duration, issued *atomic.Int32) *httptest.Server {
	t.Helper()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/p2p/tickets" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+apiKey {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"Unauthorized","message":"invalid API key"}`))
			return
		}
		var body struct {
			PeerID string `json:"peer_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.PeerID == "" || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		n := issued.Add(1)
		json.NewEncoder(w).Encode(map[string]string{
			"ticket": fmt.Sprintf("ticket-%d-for-%s", n, body.PeerID), "jti": fmt.Sprintf("jti-%d", n),
			"expires_at": time.Now().Add(life).UTC().Format("2006-01-02T15:04:05.000Z"), "account": "acc", "tier": "free",
		})
	}))
}

func TestTicketClientRenewsAtEightyPercent(t *testing.T) {
	var issued atomic.Int32
	srv := ticketServer(t, "key-1", 100*time.Second, &issued)
	defer srv.Close()
	self, _ := peer.Decode("12D3KooWHvQwjtgQA1yoEQpf57gJQFC5wnaQtXKAE32sUaGJVdQh")
	c := NewTicketClient(srv.URL, "key-1", self, nil)
	now := time.Now()
	c.now = func() time.Time { return now }
	ctx := context.Background()
	first, err := c.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.JTI != "jti-1" || !strings.HasSuffix(first.Token, self.String()) {
		t.Fatalf("unexpected ticket %+v", first)
	}
	now = now.Add(79 * time.Second)
	if again, _ := c.Current(ctx); again.JTI != "jti-1" {
		t.Errorf("renewed at 79 %% of the lifetime: %s", again.JTI)
	}
	if d := c.RenewIn(); d <= 0 || d > 2*time.Second {
		t.Errorf("RenewIn = %v at 79 %%, want about 1 s", d)
	}
	now = now.Add(2 * time.Second)
	if renewed, _ := c.Current(ctx); renewed.JTI != "jti-2" {
		t.Errorf("not renewed at 81 %% of the lifetime: %s", renewed.JTI)
	}
	if issued.Load() != 2 {
		t.Errorf("%d tickets issued, want 2", issued.Load())
	}

	bad := NewTicketClient(srv.URL, "wrong", self, nil)
	_, err = bad.Current(ctx)
	var status *HTTPStatusError
	if !errors.Is(err, ErrTicketRequest) || !errors.As(err, &status) || status.Status != 401 {
		t.Errorf("wrong key: got %v, want a 401 matching ErrTicketRequest", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error repeats the API key: %v", err)
	}
}
