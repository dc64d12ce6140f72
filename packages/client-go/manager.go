package posrelay

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
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
