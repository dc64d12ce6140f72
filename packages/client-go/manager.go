package posrelay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// EventType names what a manager reports through WithEventHandler.
type EventType string

// Event types.
const (
	EventRelays          EventType = "relays"           // relays chosen after a poll, the first N usable ones (Relays)
	EventReserved        EventType = "reserved"         // a reservation was made or renewed (Relay)
	EventReservationLost EventType = "reservation_lost" // a reservation went away: its relay connection closed, or renewing failed (Relay)
	EventReleased        EventType = "released"         // a reservation given up on purpose, once the relays chosen instead all hold one (Relay)
	EventReserveFailed   EventType = "reserve_failed"   // connecting, presenting a ticket or reserving failed (Relay, Err); a failed reservation makes the relay unusable
	EventDiscoveryFailed EventType = "discovery_failed" // the relay list could not be fetched (Err)
	EventTicketPresented EventType = "ticket_presented" // a (new) ticket was accepted by a relay (Relay)
)

// Event is one thing the manager did.
type Event struct {
	Type   EventType
	Relay  peer.ID
	Relays []peer.ID
	Err    error
}

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

// Manager keeps reservations on the first N usable relays ranked for the
// host's peer id (docs/protocol.md section 4), fed by the discovery API: it
// polls the relay list, gets and renews tickets (with an API key), presents
// them before reserving, renews each reservation at 80 % of its lifetime, and
// dials other peers through the relays ranked for them.
//
// A relay that fails (connecting fails or times out, its connection closes
// and the immediate reconnect fails, the ticket or the RESERVE is refused) is
// unusable: the next relay of the ranking is reserved on at once, the failed
// one is retried in the background (0.5 s doubling to 10 s, jittered) and
// chosen again once a retry holds. A relay no longer chosen is released only
// once every chosen relay holds a reservation (make-before-break). A failure
// schedules one discovery refresh after a uniform 0-2 s delay, at most one
// per 10 s; relays missing from a fresh list are forgotten.
// Hole punching (DCUtR) is left to the host (libp2p.EnableHolePunching()).
type Manager struct {
	h       host.Host
	url     string
	cfg     config
	tickets *TicketClient
	now     func() time.Time
	random  func() float64

	mu                 sync.Mutex
	known              []Relay
	held               map[peer.ID]*heldRelay
	unusable           map[peer.ID]*unusableRelay
	presented          map[peer.ID]string // relay -> jti of the ticket presented on the current connection
	discoveryFailures  int
	nextRetry          time.Time
	refreshPending     bool
	lastFailureRefresh time.Time
	started, closed    bool
	dialLookups        int

	firstReservation     chan struct{}
	firstReservationOnce sync.Once
	kick                 chan struct{}
	refreshNow           chan struct{}
	attempts             sync.WaitGroup
	ctx                  context.Context
	cancel               context.CancelFunc
	done                 chan struct{}
	notifiee             *network.NotifyBundle
}

// New returns a manager for h; call Start to begin, Close to stop. The host
// must have the circuit relay transport (libp2p.EnableRelay(), on by default)
// to accept relayed connections.
func New(h host.Host, discoveryURL string, opts ...Option) (*Manager, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if _, err := endpoint(discoveryURL, "api/p2p/relays"); err != nil {
		return nil, fmt.Errorf("posrelay: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		h: h, url: discoveryURL, cfg: cfg, now: time.Now, random: rand.Float64,
		held: map[peer.ID]*heldRelay{}, unusable: map[peer.ID]*unusableRelay{}, presented: map[peer.ID]string{},
		firstReservation: make(chan struct{}), kick: make(chan struct{}, 1), refreshNow: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	if cfg.apiKey != "" {
		m.tickets = NewTicketClient(discoveryURL, cfg.apiKey, h.ID(), cfg.httpClient)
	}
	return m, nil
}

// Start begins polling and reserving in the background and waits until the
// first reservation exists or ctx ends (then it returns an error matching
// ErrNoReservation; the manager keeps trying until Close).
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if !m.started {
		m.started = true
		m.notifiee = &network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
			go m.onDisconnect(c.RemotePeer())
		}}
		m.h.Network().Notify(m.notifiee)
		go m.run()
	}
	m.mu.Unlock()
	select {
	case <-m.firstReservation:
		return nil
	case <-m.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNoReservation, ctx.Err())
	}
}

// Close stops the background work (it does not close the host).
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	started := m.started
	m.mu.Unlock()
	m.cancel()
	if started {
		m.h.Network().StopNotify(m.notifiee)
		<-m.done
	}
	m.attempts.Wait()
	return nil
}

// Relays is the relay list of the last successful poll: the relays discovery
// ranked for the host's own peer id (?for=, RankedCount of them), or the
// whole list from an older discovery.
func (m *Manager) Relays() []Relay {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Relay(nil), m.known...)
}

// Chosen is the relays the manager reserves on now, in rank order: the first
// N of its ranking that are not unusable (RelaysToReserve).
func (m *Manager) Chosen() []Relay {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.chosenLocked()
}

// Unusable is the relays that failed and have not been retried successfully since.
func (m *Manager) Unusable() []peer.ID {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]peer.ID, 0, len(m.unusable))
	for id := range m.unusable {
		out = append(out, id)
	}
	return out
}

func (m *Manager) chosenLocked() []Relay {
	unusable := make(map[string]bool, len(m.unusable))
	for id := range m.unusable {
		unusable[id.String()] = true
	}
	return RelaysToReserve(m.known, m.h.ID().String(), m.cfg.relayCount, unusable)
}

func (m *Manager) connected(id peer.ID) bool {
	return m.h.Network().Connectedness(id) == network.Connected
}

// holdsLocked: a reservation exists, is not expired, and its relay connection is up.
func (m *Manager) holdsLocked(st *heldRelay) bool {
	return !st.reservedAt.IsZero() && m.now().Before(st.expires) && m.connected(st.ai.ID)
}

// renewDueLocked: the reservation has run 80 % of its lifetime.
func (m *Manager) renewDueLocked(st *heldRelay) bool {
	renewAt := st.reservedAt.Add(time.Duration(float64(st.expires.Sub(st.reservedAt)) * RenewFraction))
	return !m.now().Before(renewAt)
}

// HasReservation says whether the manager holds a live reservation on relay.
func (m *Manager) HasReservation(relay peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.held[relay]
	return st != nil && m.holdsLocked(st)
}

// CircuitAddrs are the host's /p2p-circuit addresses through the relays it
// holds a reservation on, in rank order: how other peers reach it.
func (m *Manager) CircuitAddrs() []ma.Multiaddr {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ma.Multiaddr
	for _, r := range RankRelays(m.known, m.h.ID().String()) {
		ai, err := r.AddrInfo()
		if err != nil {
			continue
		}
		if st := m.held[ai.ID]; st != nil && m.holdsLocked(st) {
			out = append(out, circuitAddrs(ai, m.h.ID())...)
		}
	}
	return out
}

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

// Refresh fetches the relays ranked for the host's own peer id now
// (?for=<own id>&count=RankedCount(N): enough to skip failed ones); relays
// missing from the answer are forgotten (no longer retried). A started
// manager then brings its reservations in line with the new list. A peer that
// only dials need not Start: Dial looks up the target's relays itself.
func (m *Manager) Refresh(ctx context.Context) error {
	relays, err := m.fetch(ctx, m.h.ID())
	m.mu.Lock()
	if err != nil || len(relays) == 0 {
		// an empty list backs off like a failure, so clients do not poll every tick
		m.discoveryFailures++
	} else {
		m.discoveryFailures = 0
	}
	m.nextRetry = m.now().Add(min(30*time.Second, time.Second<<min(m.discoveryFailures, 6)/2))
	if err != nil {
		m.mu.Unlock()
		return err
	}
	m.known = relays
	listed := map[peer.ID]Relay{}
	for _, r := range relays {
		if ai, err := r.AddrInfo(); err == nil {
			listed[ai.ID] = r
		}
	}
	for id := range m.unusable {
		if _, ok := listed[id]; !ok {
			delete(m.unusable, id)
		}
	}
	for id, st := range m.held {
		if r, ok := listed[id]; ok {
			if ai, err := r.AddrInfo(); err == nil && len(ai.Addrs) > 0 {
				st.info, st.ai = r, ai
			}
		}
	}
	started := m.started
	m.mu.Unlock()
	if started {
		m.poke()
	}
	return nil
}

// fetch asks discovery for the RankedCount relays ranked for id (?for=), at most 10 s.
func (m *Manager) fetch(ctx context.Context, id peer.ID) ([]Relay, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return FetchRelays(ctx, m.url, FetchOptions{
		Client: m.cfg.httpClient, Policy: m.cfg.policy, MaxBodyBytes: m.cfg.maxBodyBytes,
		For: id.String(), Count: RankedCount(m.cfg.relayCount),
	})
}

// poke makes the run loop check the reservations now.
func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Manager) emit(events ...Event) {
	if m.cfg.onEvent == nil {
		return
	}
	for _, e := range events {
		m.cfg.onEvent(e)
	}
}

func (m *Manager) onDisconnect(id peer.ID) {
	if m.connected(id) {
		return
	}
	m.mu.Lock()
	delete(m.presented, id)
	st := m.held[id]
	if st != nil {
		st.reservedAt, st.expires = time.Time{}, time.Time{}
	}
	m.mu.Unlock()
	if st != nil {
		m.poke() // reconnect at once, not at the next tick
	}
}

func (m *Manager) run() {
	defer close(m.done)
	m.poll(m.ctx)
	// the poll interval jittered by ±10 %, so a fleet started together does not poll in step
	nextPoll := func() time.Duration {
		return time.Duration(float64(m.cfg.pollInterval) * (0.9 + 0.2*m.random()))
	}
	pollTimer := time.NewTimer(nextPoll())
	defer pollTimer.Stop()
	checkTicker := time.NewTicker(m.cfg.checkInterval)
	defer checkTicker.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-pollTimer.C:
			m.poll(m.ctx)
			pollTimer.Reset(nextPoll())
		case <-m.refreshNow:
			m.mu.Lock()
			m.refreshPending = false
			m.lastFailureRefresh = m.now()
			m.mu.Unlock()
			m.poll(m.ctx)
		case <-checkTicker.C:
			m.mu.Lock()
			retry := len(m.known) == 0 && !m.now().Before(m.nextRetry)
			m.mu.Unlock()
			if retry {
				m.poll(m.ctx)
			} else {
				m.check()
			}
		case <-m.kick:
			m.check()
		}
	}
}

// poll refreshes the list and brings the reservations in line with it.
func (m *Manager) poll(ctx context.Context) {
	if err := m.Refresh(ctx); err != nil {
		if ctx.Err() == nil {
			m.emit(Event{Type: EventDiscoveryFailed, Err: err})
		}
		return
	}
	m.mu.Lock()
	var order []peer.ID
	for _, r := range m.chosenLocked() {
		if ai, err := r.AddrInfo(); err == nil {
			order = append(order, ai.ID)
		}
	}
	m.mu.Unlock()
	m.emit(Event{Type: EventRelays, Relays: order})
	m.check()
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
