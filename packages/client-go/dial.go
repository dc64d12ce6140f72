package posrelay

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// AddrsFor are the circuit addresses at which target should be reachable:
// through the N relays ranked first for it, among the relays of the last
// poll. That list holds the relays ranked for the host's own id (?for=), so
// for another peer this is a guess; Dial looks the target's relays up.
func (m *Manager) AddrsFor(target peer.ID) []ma.Multiaddr {
	ranked := RankRelays(m.Relays(), target.String())
	var out []ma.Multiaddr
	for _, r := range ranked[:min(len(ranked), m.cfg.relayCount)] {
		if ai, err := r.AddrInfo(); err == nil {
			out = append(out, circuitAddrs(ai, target)...)
		}
	}
	return out
}

// circuitAddrs: <relay addr>/p2p/<relay>/p2p-circuit[/p2p/<target>]
func circuitAddrs(relay peer.AddrInfo, target peer.ID) []ma.Multiaddr {
	suffix := "/p2p/" + relay.ID.String() + "/p2p-circuit"
	if target != "" {
		suffix += "/p2p/" + target.String()
	}
	tail := ma.StringCast(suffix)
	out := make([]ma.Multiaddr, 0, len(relay.Addrs))
	for _, a := range relay.Addrs {
		out = append(out, a.Encapsulate(tail))
	}
	return out
}

// Dial connects to target through the relays ranked for it: the first N,
// then the next ones on refusal, up to N + 2 relays. It first asks discovery
// for the target's relays (?for=<target>&count=RankedCount(N)), falling back
// to the last polled list when that lookup fails or answers none, and ranks
// what it has for the target (an older discovery answers the whole list).
// With an API key the ticket is presented to each relay first. The returned
// connection is usually limited (relayed): open streams with
// network.WithAllowLimitedConn; DCUtR may later add a direct one.
func (m *Manager) Dial(ctx context.Context, target peer.ID) (network.Conn, error) {
	known, err := m.relaysFor(ctx, target)
	if len(known) == 0 {
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoRelays, err)
		}
		return nil, ErrNoRelays
	}
	var errs []error
	for _, r := range RelaysToDial(known, target.String(), m.cfg.relayCount) {
		ai, err := r.AddrInfo()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conn, circuits, err := m.dialVia(ctx, ai, target)
		if err == nil {
			return conn, nil
		}
		if circuits == nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		// forget this relay's circuit addrs, so the next attempt dials only the next relay
		m.h.Peerstore().SetAddrs(target, circuits, 0)
		errs = append(errs, fmt.Errorf("via relay %s: %w", ai.ID, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: %s: %w", ErrDialFailed, target, errors.Join(errs...))
}

// DialLookups is how many discovery lookups of a dial target's relays
// (?for=<target>) the manager made: one per Dial.
func (m *Manager) DialLookups() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dialLookups
}

// relaysFor: the relays discovery ranks for target; when that lookup fails
// (reported as EventDiscoveryFailed) or answers none, the last polled list.
// err is the lookup's failure, for when there is no list to fall back on.
func (m *Manager) relaysFor(ctx context.Context, target peer.ID) ([]Relay, error) {
	m.mu.Lock()
	m.dialLookups++
	m.mu.Unlock()
	relays, err := m.fetch(ctx, target)
	if err == nil && len(relays) > 0 {
		return relays, nil
	}
	if err != nil && ctx.Err() == nil && m.ctx.Err() == nil {
		m.emit(Event{Type: EventDiscoveryFailed, Err: err})
	}
	return m.Relays(), err
}

// dialVia dials target through one relay, giving it at most ReserveTimeout so
// a relay that does not answer leaves time for the next ones. circuits is nil
// when the relay itself failed (ticket), else the circuit addrs tried.
func (m *Manager) dialVia(ctx context.Context, relay peer.AddrInfo, target peer.ID) (network.Conn, []ma.Multiaddr, error) {
	ctx, cancel := context.WithTimeout(ctx, ReserveTimeout)
	defer cancel()
	if err := m.ensureTicket(ctx, relay); err != nil {
		return nil, nil, err
	}
	// connect to the relay first, over its preferred addrs: a dead one fails at once
	if err := m.h.Connect(ctx, m.relayAddrs(relay)); err != nil {
		return nil, nil, fmt.Errorf("connect relay %s: %w", relay.ID, err)
	}
	circuits := circuitAddrs(relay, "")
	m.h.Peerstore().AddAddrs(target, circuits, peerstore.TempAddrTTL)
	conn, err := m.h.Network().DialPeer(network.WithAllowLimitedConn(ctx, "posrelay"), target)
	return conn, circuits, err
}
