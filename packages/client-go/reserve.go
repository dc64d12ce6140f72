package posrelay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// heldRelay is a relay the manager reserves on, tries to, or still holds
// while its replacement is being reserved (make-before-break).
type heldRelay struct {
	info Relay
	ai   peer.AddrInfo
	// reservedAt and expires describe the current reservation; zero when there is none
	reservedAt, expires time.Time
	// reported: EventReserved was sent and no EventReservationLost since (a loss is reported once)
	reported bool
	// busy: a reservation attempt is in flight
	busy bool
	// ticketing: a renewed ticket is being presented
	ticketing bool
}

// unusableRelay is a relay that failed and has not been retried successfully since.
type unusableRelay struct {
	failures    int
	nextAttempt time.Time
}

// check brings the reservations in line with the rule. It never waits for
// the network: each reservation attempt runs by itself and pokes the loop
// when it ends, so a relay that times out does not hold back the move of
// another.
func (m *Manager) check() {
	var events []Event
	var release, dropped []peer.ID
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	chosen := m.chosenLocked()
	chosenIDs := map[peer.ID]bool{}
	allHold := true
	for _, r := range chosen {
		ai, err := r.AddrInfo()
		if err != nil || len(ai.Addrs) == 0 {
			// nothing to dial: unusable like a relay that refuses
			if id, derr := peer.Decode(r.PeerID); derr == nil {
				m.markUnusableLocked(id, false)
			}
			allHold = false
			continue
		}
		chosenIDs[ai.ID] = true
		st := m.heldLocked(r, ai)
		if m.holdsLocked(st) {
			if m.renewDueLocked(st) {
				m.startAttemptLocked(st, false)
			} else {
				m.keepTicketLocked(st)
			}
			continue
		}
		allHold = false
		events = append(events, m.reportLostLocked(st)...)
		m.startAttemptLocked(st, false)
	}
	// background retries of unusable relays that would be chosen again if the retry holds
	now := m.now()
	for id, u := range m.unusable {
		if now.Before(u.nextAttempt) {
			continue
		}
		others := map[string]bool{}
		for o := range m.unusable {
			if o != id {
				others[o.String()] = true
			}
		}
		for _, r := range RelaysToReserve(m.known, m.h.ID().String(), m.cfg.relayCount, others) {
			if r.PeerID != id.String() {
				continue
			}
			if ai, err := r.AddrInfo(); err == nil && len(ai.Addrs) > 0 {
				m.startAttemptLocked(m.heldLocked(r, ai), true)
			}
		}
	}
	// make-before-break: relays no longer chosen go once every chosen relay holds a reservation
	for id, st := range m.held {
		if chosenIDs[id] || st.busy {
			continue
		}
		if m.holdsLocked(st) {
			if !allHold {
				continue
			}
			st.reported = false
			events = append(events, Event{Type: EventReleased, Relay: id})
			release = append(release, id)
		} else {
			events = append(events, m.reportLostLocked(st)...)
		}
		delete(m.held, id)
		dropped = append(dropped, id)
	}
	m.mu.Unlock()
	for _, id := range dropped {
		m.h.ConnManager().Unprotect(id, connTag)
	}
	for _, id := range release {
		_ = m.h.Network().ClosePeer(id)
	}
	m.emit(events...)
}

// connTag protects relay connections from the connection manager's trimming.
const connTag = "posrelay"

func (m *Manager) heldLocked(r Relay, ai peer.AddrInfo) *heldRelay {
	st := m.held[ai.ID]
	if st == nil {
		st = &heldRelay{info: r, ai: ai}
		m.held[ai.ID] = st
	}
	return st
}

func (m *Manager) reportLostLocked(st *heldRelay) []Event {
	if !st.reported {
		return nil
	}
	st.reported = false
	return []Event{{Type: EventReservationLost, Relay: st.ai.ID}}
}

// markUnusableLocked: a relay failed; it is unusable until a retry holds. Its
// first failure schedules one discovery refresh; failed retries schedule none.
func (m *Manager) markUnusableLocked(id peer.ID, retry bool) {
	u := m.unusable[id]
	if u == nil {
		u = &unusableRelay{}
		m.unusable[id] = u
	}
	u.failures++
	delay := retryDelay(u.failures, m.random())
	u.nextAttempt = m.now().Add(delay)
	// retry when due, not at the next check tick
	time.AfterFunc(delay, m.poke)
	if !retry && u.failures == 1 && !m.refreshPending && !m.closed {
		m.refreshPending = true
		time.AfterFunc(failureRefreshDelay(m.now(), m.lastFailureRefresh, m.random()), func() {
			select {
			case m.refreshNow <- struct{}{}:
			default:
			}
		})
	}
}

// keepTicketLocked keeps a renewed ticket presented, or the relay ends the reservation when the old one expires.
func (m *Manager) keepTicketLocked(st *heldRelay) {
	if m.tickets == nil || st.ticketing || st.busy {
		return
	}
	st.ticketing = true
	ai := st.ai
	m.attempts.Add(1)
	go func() {
		defer m.attempts.Done()
		ctx, cancel := context.WithTimeout(m.ctx, ReserveTimeout)
		defer cancel()
		err := m.ensureTicket(ctx, ai)
		var events []Event
		m.mu.Lock()
		st.ticketing = false
		if errors.Is(err, ErrTicketRejected) {
			// the relay refuses our renewed ticket: it will end the reservation, move now
			st.reservedAt, st.expires = time.Time{}, time.Time{}
			events = append(events, m.reportLostLocked(st)...)
			m.markUnusableLocked(ai.ID, false)
		}
		m.mu.Unlock()
		if err != nil && m.ctx.Err() == nil {
			events = append(events, Event{Type: EventReserveFailed, Relay: ai.ID, Err: err})
		}
		m.emit(events...)
		if errors.Is(err, ErrTicketRejected) {
			m.poke()
		}
	}()
}

// startAttemptLocked connects to the relay, presents the ticket and reserves,
// in the background. A failure makes the relay unusable (retry: it already was).
func (m *Manager) startAttemptLocked(st *heldRelay, retry bool) {
	if st.busy || m.closed {
		return
	}
	st.busy = true
	ai := st.ai
	m.attempts.Add(1)
	go func() {
		defer m.attempts.Done()
		res, err := m.reserve(ai)
		var events []Event
		m.mu.Lock()
		st.busy = false
		if err != nil {
			st.reservedAt, st.expires = time.Time{}, time.Time{}
			events = append(events, m.reportLostLocked(st)...)
			m.markUnusableLocked(ai.ID, retry)
			if m.ctx.Err() == nil { // not after Close
				events = append(events, Event{Type: EventReserveFailed, Relay: ai.ID, Err: err})
			}
		} else {
			delete(m.unusable, ai.ID)
			st.reservedAt, st.expires = m.now(), res.Expiration
			st.reported = true
			events = append(events, Event{Type: EventReserved, Relay: ai.ID})
		}
		m.mu.Unlock()
		if err == nil {
			m.firstReservationOnce.Do(func() { close(m.firstReservation) })
		}
		m.emit(events...)
		m.poke()
	}()
}

// reserve: connect (bounded by ReserveTimeout, past the swarm's dial backoff:
// a relay that comes back must be reachable at the next retry), present the
// ticket, RESERVE.
func (m *Manager) reserve(ai peer.AddrInfo) (*client.Reservation, error) {
	ctx, cancel := context.WithTimeout(m.ctx, ReserveTimeout)
	defer cancel()
	ctx = network.WithForceDirectDial(ctx, "posrelay: relay")
	ai = m.relayAddrs(ai)
	if err := m.h.Connect(ctx, ai); err != nil {
		return nil, fmt.Errorf("connect relay %s: %w", ai.ID, err)
	}
	m.h.ConnManager().Protect(ai.ID, connTag)
	if err := m.ensureTicket(ctx, ai); err != nil {
		return nil, err
	}
	return client.Reserve(ctx, m.h, ai)
}

// relayAddrs makes the peerstore hold only the addrs the manager connects to
// relay with (what identify added earlier is cleared): its TCP ones when it
// has any. A relay process that dies resets its TCP connections at once, so
// the listener moves at once and a dialer skips it at once; over QUIC both
// would wait for a timeout (quic-go ignores the ICMP port unreachable), the
// swarm waiting on the QUIC attempt even after TCP was refused.
func (m *Manager) relayAddrs(relay peer.AddrInfo) peer.AddrInfo {
	var tcp []ma.Multiaddr
	for _, a := range relay.Addrs {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			tcp = append(tcp, a)
		}
	}
	if len(tcp) > 0 {
		relay.Addrs = tcp
	}
	if !m.connected(relay.ID) {
		m.h.Peerstore().ClearAddrs(relay.ID)
	}
	m.h.Peerstore().AddAddrs(relay.ID, relay.Addrs, peerstore.TempAddrTTL)
	return relay
}

// ensureTicket: with an API key, makes sure relay holds our current ticket on
// the current connection (connecting if needed). Without one it only adds
// the relay's addrs so the swarm can dial it.
func (m *Manager) ensureTicket(ctx context.Context, relay peer.AddrInfo) error {
	relay = m.relayAddrs(relay)
	if m.tickets == nil {
		return nil
	}
	t, err := m.tickets.Current(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	same := m.presented[relay.ID] == t.JTI
	m.mu.Unlock()
	if same && m.connected(relay.ID) {
		return nil
	}
	if err := m.h.Connect(ctx, relay); err != nil {
		return fmt.Errorf("connect relay %s: %w", relay.ID, err)
	}
	if _, err := PresentTicket(ctx, m.h, relay.ID, t.Token); err != nil {
		return fmt.Errorf("relay %s: %w", relay.ID, err)
	}
	m.mu.Lock()
	m.presented[relay.ID] = t.JTI
	m.mu.Unlock()
	m.emit(Event{Type: EventTicketPresented, Relay: relay.ID})
	return nil
}
