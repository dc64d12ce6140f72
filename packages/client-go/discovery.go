package posrelay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// DefaultMaxBodyBytes bounds what is read of a discovery answer: a relay list
// of a few hundred relays is far smaller; whoever answers must not make a
// client buffer more.
const DefaultMaxBodyBytes = 1 << 20

// Relay is one entry of GET /api/p2p/relays after filtering: Addrs are the
// entry's dialable addrs, each ending in /p2p/<PeerID>.
type Relay struct {
	ID     string   `json:"id"`
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
}

// AddrInfo is the relay as go-libp2p dials it.
func (r Relay) AddrInfo() (peer.AddrInfo, error) {
	id, err := peer.Decode(r.PeerID)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("relay %s: %w", r.ID, err)
	}
	info := peer.AddrInfo{ID: id}
	for _, a := range r.Addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			continue
		}
		transport, _ := peer.SplitAddr(m)
		if len(transport) > 0 {
			info.Addrs = append(info.Addrs, transport)
		}
	}
	return info, nil
}

// ParseRelayList turns the body of GET /api/p2p/relays into the relays a
// client may dial. A body that is not a JSON array is ErrInvalidDocument.
// Malformed entries are skipped, not errors (one broken relay must not cut a
// client off from the others); addrs are kept only when they name the entry's
// own peer id and pass policy; an entry with no addr left is skipped; of
// entries with the same id the first wins.
func ParseRelayList(body []byte, policy AddressPolicy) ([]Relay, error) {
	var entries []json.RawMessage
	if err := json.Unmarshal(body, &entries); err != nil || entries == nil {
		return nil, fmt.Errorf("%w: not a JSON array", ErrInvalidDocument)
	}
	relays := make([]Relay, 0, len(entries))
	ids := make(map[string]bool, len(entries))
	peers := make(map[string]bool, len(entries))
	for _, raw := range entries {
		r, ok := parseEntry(raw, policy, ids, peers)
		if !ok {
			continue
		}
		// each relay is ranked (and reserved on) once
		ids[r.ID], peers[r.PeerID] = true, true
		relays = append(relays, r)
	}
	return relays, nil
}

func parseEntry(raw json.RawMessage, policy AddressPolicy, ids, peers map[string]bool) (Relay, bool) {
	// a map, not a struct: keys are case-sensitive ("ID" is not "id"), a repeated key's last value counts
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		return Relay{}, false
	}
	var r Relay
	var addrs []json.RawMessage
	if !jsonString(fields["id"], &r.ID) || r.ID == "" || !jsonString(fields["peer_id"], &r.PeerID) ||
		json.Unmarshal(fields["addrs"], &addrs) != nil || addrs == nil {
		return Relay{}, false
	}
	if ids[r.ID] || peers[r.PeerID] || !canonicalPeerID(r.PeerID) {
		return Relay{}, false
	}
	for _, rawAddr := range addrs {
		var s string
		if !jsonString(rawAddr, &s) {
			continue
		}
		m, ok := entryAddr(s, r.PeerID)
		if !ok || RelayAddressProblem(m, policy) != "" {
			continue
		}
		r.Addrs = append(r.Addrs, s) // verbatim, not re-encoded
		if len(r.Addrs) == MaxRelayAddrs {
			break
		}
	}
	return r, len(r.Addrs) > 0
}

// canonicalPeerID: the one spelling discovery writes (base58btc); CID and other spellings are refused.
func canonicalPeerID(s string) bool {
	id, err := peer.Decode(s)
	return err == nil && id.String() == s
}

// jsonString decodes raw into s when raw is a JSON string (not null, not a number).
func jsonString(raw json.RawMessage, s *string) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, s) == nil
}

// entryAddr: an addr of a relay entry ends in the text /p2p/<the entry's peer
// id>, names no other peer, is no circuit address, and has a host and a
// transport (or is /dnsaddr): the shape discovery writes. A list cannot send
// us to one relay's address under another relay's identity.
func entryAddr(addr, peerID string) (ma.Multiaddr, bool) {
	// as text: no /ipfs/ or CID spelling, which multiaddr libraries read differently
	if !strings.HasSuffix(addr, "/p2p/"+peerID) {
		return nil, false
	}
	m, err := ma.NewMultiaddr(addr)
	if err != nil || len(m) == 0 {
		return nil, false
	}
	last := &m[len(m)-1]
	if last.Code() != ma.P_P2P || last.Value() != peerID {
		return nil, false
	}
	transport := m[:len(m)-1]
	for i := range transport {
		if c := transport[i].Code(); c == ma.P_P2P || c == ma.P_CIRCUIT {
			return nil, false
		}
	}
	if len(transport) >= 2 || (len(transport) == 1 && transport[0].Code() == ma.P_DNSADDR) {
		return m, true
	}
	return nil, false
}

// FetchOptions tune FetchRelays; the zero value is fine.
type FetchOptions struct {
	Client       *http.Client // default http.DefaultClient; the context bounds the request
	Policy       AddressPolicy
	MaxBodyBytes int64 // default DefaultMaxBodyBytes
	// For asks for the relays ranked for this peer id only (?for=<peer id>,
	// server-side rendezvous): a few entries instead of the whole list. An
	// older discovery ignores the parameter and answers the whole list; rank
	// what comes back either way (the ranking of any subset keeps the global
	// order), so the same code works against both.
	For string
	// Count: with For, how many relays (clamped to 1..RankedCountMax; 0 leaves discovery's default, 3).
	Count int
}

// RankedCountMax is the most relays ?for= answers (the discovery API's limit).
const RankedCountMax = 16

// ExtraDialRelays: the relays a dialer tries beyond the target's first relayCount.
const ExtraDialRelays = 2

// RankedCount is the count a client asks ?for= for: relayCount + 2, at most
// 16. A listener reserves on the first relayCount usable relays of its
// ranking, skipping failed ones, and a dialer tries relayCount + 2 of the
// target's (docs/protocol.md sections 1, 4, 5).
func RankedCount(relayCount int) int {
	return min(RankedCountMax, max(1, relayCount+ExtraDialRelays))
}

// FetchRelays gets GET <discoveryURL>/api/p2p/relays (with ?for=&count= when
// opts.For is set) and parses it with ParseRelayList. Give ctx a deadline.
func FetchRelays(ctx context.Context, discoveryURL string, opts FetchOptions) ([]Relay, error) {
	u, err := endpoint(discoveryURL, "api/p2p/relays")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDiscovery, err)
	}
	if opts.For != "" {
		q := url.Values{"for": {opts.For}}
		if opts.Count > 0 {
			q.Set("count", strconv.Itoa(min(opts.Count, RankedCountMax)))
		}
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDiscovery, err)
	}
	req.Header.Set("Accept", "application/json")
	body, err := doBounded(opts.Client, req, opts.MaxBodyBytes, ErrDiscovery)
	if err != nil {
		return nil, err
	}
	return ParseRelayList(body, opts.Policy)
}

// endpoint joins a base URL (with or without a trailing slash, maybe with a path prefix) and an API path.
func endpoint(base, path string) (string, error) {
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	if b.Scheme != "http" && b.Scheme != "https" {
		return "", fmt.Errorf("discovery URL %q: scheme must be http or https", base)
	}
	return b.JoinPath(path).String(), nil
}

// doBounded sends req and reads at most maxBytes of a 2xx answer; other
// statuses become *HTTPStatusError wrapping sentinel.
func doBounded(client *http.Client, req *http.Request, maxBytes int64, sentinel error) ([]byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBodyBytes
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", sentinel, req.URL.Redacted(), err)
	}
	defer res.Body.Close()
	if res.ContentLength > maxBytes {
		return nil, fmt.Errorf("%w: %w: %s declared %d bytes, limit %d", sentinel, ErrResponseTooLarge, req.URL.Redacted(), res.ContentLength, maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", sentinel, req.URL.Redacted(), err)
	}
	if int64(len(body)) > maxBytes {
		return nil, fmt.Errorf("%w: %w: %s sent more than %d bytes", sentinel, ErrResponseTooLarge, req.URL.Redacted(), maxBytes)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		head := body
		if len(head) > 200 {
			head = head[:200]
		}
		return nil, &HTTPStatusError{sentinel: sentinel, URL: req.URL.Redacted(), Status: res.StatusCode, Body: string(head)}
	}
	return body, nil
}
