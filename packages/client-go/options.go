package posrelay

import (
	"fmt"
	"net/http"
	"time"
)

// Option configures a Manager (functional options).
type Option func(*config) error

type config struct {
	relayCount    int
	pollInterval  time.Duration
	checkInterval time.Duration
	apiKey        string
	policy        AddressPolicy
	httpClient    *http.Client
	maxBodyBytes  int64
	onEvent       func(Event)
}

func defaultConfig() config {
	return config{relayCount: 2, pollInterval: time.Minute, checkInterval: 2 * time.Second}
}

// WithRelayCount sets N, the relays to hold a reservation on at once (default
// 2). A dialer tries the target's first N relays, then the next ones up to N + 2.
func WithRelayCount(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("posrelay: relay count must be >= 1, got %d", n)
		}
		c.relayCount = n
		return nil
	}
}

// WithAPIKey makes the manager get relay tickets from discovery with the
// account's API key and present them before reserving and dialing.
func WithAPIKey(key string) Option {
	return func(c *config) error { c.apiKey = key; return nil }
}

// WithPollInterval sets how often the relay list is fetched (default 1 min).
func WithPollInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("posrelay: poll interval must be > 0")
		}
		c.pollInterval = d
		return nil
	}
}

// WithCheckInterval sets how often reservations and tickets are checked (default 2 s).
func WithCheckInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("posrelay: check interval must be > 0")
		}
		c.checkInterval = d
		return nil
	}
}

// WithAddressPolicy sets which relay addrs may be dialed (default: loopback and private allowed).
func WithAddressPolicy(p AddressPolicy) Option {
	return func(c *config) error { c.policy = p; return nil }
}

// WithHTTPClient sets the client for discovery requests (default http.DefaultClient).
func WithHTTPClient(h *http.Client) Option {
	return func(c *config) error { c.httpClient = h; return nil }
}

// WithMaxBodyBytes bounds the relay list read from discovery (default 1 MiB).
func WithMaxBodyBytes(n int64) Option {
	return func(c *config) error { c.maxBodyBytes = n; return nil }
}

// WithEventHandler receives what the manager does (relays chosen, reserved,
// lost, failures). It is called from the manager's goroutines; keep it quick.
func WithEventHandler(f func(Event)) Option {
	return func(c *config) error { c.onEvent = f; return nil }
}
