package posrelay

import (
	"context"
	"errors"
	"fmt"
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
	EventRelays          EventType = "relays"           // relays chosen after a poll (Relays)
	EventReserved        EventType = "reserved"         // a reservation was made or renewed (Relay)
	EventReservationLost EventType = "reservation_lost" // the connection to a reserved relay went away (Relay)
	EventReserveFailed   EventType = "reserve_failed"   // reserving or presenting a ticket failed (Relay, Err)
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

type relayState struct {
	info Relay
	ai   peer.AddrInfo
	// reservedAt and expires describe the current reservation; zero when there is none
	reservedAt, expires time.Time
	failures            int
	nextAttempt         time.Time
	busy                bool
}

// Manager keeps reservations on the N relays ranked first for the host's peer
// id, fed by the discovery API: it polls the relay list, gets and renews
// tickets (with an API key), presents them before reserving, renews each
// reservation at 80 % of its lifetime, re-reserves with backoff after a relay
// connection drops, and dials other peers through the relays ranked for them.
// Hole punching (DCUtR) is left to the host (libp2p.EnableHolePunching()).
type Manager struct {
	h       host.Host
	url     string
	cfg     config
	tickets *TicketClient
	now     func() time.Time

	mu                sync.Mutex
	known             []Relay
	chosen            map[peer.ID]*relayState
	order             []peer.ID
	presented         map[peer.ID]string // relay -> jti of the ticket presented on the current connection
	discoveryFailures int
	nextRetry         time.Time
	started, closed   bool

	firstReservation     chan struct{}
	firstReservationOnce sync.Once
	kick                 chan struct{}
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
		h: h, url: discoveryURL, cfg: cfg, now: time.Now,
		chosen: map[peer.ID]*relayState{}, presented: map[peer.ID]string{},
		firstReservation: make(chan struct{}), kick: make(chan struct{}, 1),
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
	return nil
}

// Relays is the relay list of the last successful poll.
func (m *Manager) Relays() []Relay {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Relay(nil), m.known...)
}

// Chosen is the relays the manager reserves on, in rank order.
func (m *Manager) Chosen() []Relay {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Relay, 0, len(m.order))
	for _, id := range m.order {
		if st := m.chosen[id]; st != nil {
			out = append(out, st.info)
		}
	}
	return out
}

func (m *Manager) connected(id peer.ID) bool {
	return m.h.Network().Connectedness(id) == network.Connected
}

// reservedLocked: a reservation that is alive (its relay connection is up) and not yet due for renewal.
func (m *Manager) reservedLocked(st *relayState, connected bool) bool {
	if st.reservedAt.IsZero() || !connected {
		return false
	}
	renewAt := st.reservedAt.Add(time.Duration(float64(st.expires.Sub(st.reservedAt)) * RenewFraction))
	return m.now().Before(renewAt)
}

// HasReservation says whether the manager holds a live reservation on relay.
func (m *Manager) HasReservation(relay peer.ID) bool {
	connected := m.connected(relay)
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.chosen[relay]
	return st != nil && !st.reservedAt.IsZero() && connected && m.now().Before(st.expires)
}

// CircuitAddrs are the host's /p2p-circuit addresses through the relays it
// holds a reservation on: how other peers reach it.
func (m *Manager) CircuitAddrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, r := range m.Chosen() {
		ai, err := r.AddrInfo()
		if err != nil || !m.HasReservation(ai.ID) {
			continue
		}
		out = append(out, circuitAddrs(ai, m.h.ID())...)
	}
	return out
}

// AddrsFor are the circuit addresses at which target should be reachable:
// through the N relays ranked first for it.
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

// Refresh fetches the relay list now and re-chooses relays. A peer that only
// dials need not Start: Dial refreshes when no list is known.
func (m *Manager) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	relays, err := FetchRelays(ctx, m.url, FetchOptions{Client: m.cfg.httpClient, Policy: m.cfg.policy, MaxBodyBytes: m.cfg.maxBodyBytes})
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil || len(relays) == 0 {
		// an empty list backs off like a failure, so clients do not poll every tick
		m.discoveryFailures++
	} else {
		m.discoveryFailures = 0
	}
	m.nextRetry = m.now().Add(min(30*time.Second, time.Second<<min(m.discoveryFailures, 6)/2))
	if err != nil {
		return err
	}
	m.known = relays
	wanted := RankRelays(relays, m.h.ID().String())
	wanted = wanted[:min(len(wanted), m.cfg.relayCount)]
	m.order = m.order[:0]
	for _, r := range wanted {
		ai, err := r.AddrInfo()
		if err != nil || len(ai.Addrs) == 0 {
			continue
		}
		m.order = append(m.order, ai.ID)
		if st := m.chosen[ai.ID]; st != nil {
			st.info, st.ai = r, ai
			continue
		}
		m.chosen[ai.ID] = &relayState{info: r, ai: ai}
	}
	return nil
}

func (m *Manager) emit(e Event) {
	if m.cfg.onEvent != nil {
		m.cfg.onEvent(e)
	}
}

func (m *Manager) onDisconnect(id peer.ID) {
	if m.connected(id) {
		return
	}
	m.mu.Lock()
	delete(m.presented, id)
	st := m.chosen[id]
	lost := st != nil && !st.reservedAt.IsZero()
	if lost {
		st.reservedAt, st.expires, st.nextAttempt = time.Time{}, time.Time{}, time.Time{}
	}
	m.mu.Unlock()
	if lost {
		m.emit(Event{Type: EventReservationLost, Relay: id})
		select { // reconnect promptly, not at the next tick
		case m.kick <- struct{}{}:
		default:
		}
	}
}

func (m *Manager) run() {
	defer close(m.done)
	m.poll(m.ctx)
	pollTicker := time.NewTicker(m.cfg.pollInterval)
	defer pollTicker.Stop()
	checkTicker := time.NewTicker(m.cfg.checkInterval)
	defer checkTicker.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-pollTicker.C:
			m.poll(m.ctx)
		case <-checkTicker.C:
			m.mu.Lock()
			retry := len(m.order) == 0 && !m.now().Before(m.nextRetry)
			m.mu.Unlock()
			if retry {
				m.poll(m.ctx)
			} else {
				m.check(m.ctx)
			}
		case <-m.kick:
			m.check(m.ctx)
		}
	}
}

// poll refreshes the list, reserves on the chosen relays, then lets go of
// relays no longer chosen once every chosen one holds a reservation.
func (m *Manager) poll(ctx context.Context) {
	if err := m.Refresh(ctx); err != nil {
		if ctx.Err() == nil {
			m.emit(Event{Type: EventDiscoveryFailed, Err: err})
		}
		return
	}
	m.mu.Lock()
	order := append([]peer.ID(nil), m.order...)
	m.mu.Unlock()
	m.emit(Event{Type: EventRelays, Relays: order})
	m.check(ctx)
	for _, id := range order {
		if !m.HasReservation(id) {
			return
		}
	}
	var drop []peer.ID
	m.mu.Lock()
	for id := range m.chosen {
		if !contains(order, id) {
			drop = append(drop, id)
			delete(m.chosen, id)
		}
	}
	m.mu.Unlock()
	for _, id := range drop {
		_ = m.h.Network().ClosePeer(id)
	}
}

func contains(ids []peer.ID, id peer.ID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// check renews what is due on every chosen relay, concurrently.
func (m *Manager) check(ctx context.Context) {
	m.mu.Lock()
	states := make([]*relayState, 0, len(m.chosen))
	for _, st := range m.chosen {
		states = append(states, st)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, st := range states {
		wg.Go(func() { m.checkOne(ctx, st) })
	}
	wg.Wait()
}

func (m *Manager) checkOne(ctx context.Context, st *relayState) {
	m.mu.Lock()
	id := st.ai.ID
	m.mu.Unlock()
	connected := m.connected(id)
	m.mu.Lock()
	if st.busy {
		m.mu.Unlock()
		return
	}
	reserved := m.reservedLocked(st, connected)
	due := !m.now().Before(st.nextAttempt)
	ai := st.ai
	if !reserved && !due {
		m.mu.Unlock()
		return
	}
	st.busy = true
	m.mu.Unlock()
	defer func() { m.mu.Lock(); st.busy = false; m.mu.Unlock() }()

	if reserved {
		// keep a renewed ticket presented, or the relay ends the reservation when the old one expires
		if err := m.ensureTicket(ctx, ai); err != nil && ctx.Err() == nil {
			m.emit(Event{Type: EventReserveFailed, Relay: id, Err: err})
		}
		return
	}
	m.reserve(ctx, st, ai)
}

func (m *Manager) reserve(ctx context.Context, st *relayState, ai peer.AddrInfo) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := m.ensureTicket(ctx, ai)
	var res *client.Reservation
	if err == nil {
		res, err = client.Reserve(ctx, m.h, ai)
	}
	m.mu.Lock()
	if err != nil {
		st.failures++
		// 0.5 s, 1 s, 2 s ... capped at 10 s: a restarting relay is back within seconds
		st.nextAttempt = m.now().Add(min(10*time.Second, 500*time.Millisecond<<min(st.failures-1, 5)))
		st.reservedAt = time.Time{}
		m.mu.Unlock()
		if m.ctx.Err() == nil { // not after Close
			m.emit(Event{Type: EventReserveFailed, Relay: ai.ID, Err: err})
		}
		return
	}
	st.failures = 0
	st.reservedAt, st.expires = m.now(), res.Expiration
	m.mu.Unlock()
	m.firstReservationOnce.Do(func() { close(m.firstReservation) })
	m.emit(Event{Type: EventReserved, Relay: ai.ID})
}

// ensureTicket: with an API key, makes sure relay holds our current ticket on
// the current connection (connecting if needed). Without one it only adds
// the relay's addrs so the swarm can dial it.
func (m *Manager) ensureTicket(ctx context.Context, relay peer.AddrInfo) error {
	m.h.Peerstore().AddAddrs(relay.ID, relay.Addrs, peerstore.TempAddrTTL)
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
// then the next ones on refusal, up to N + 2 relays. With an API key the
// ticket is presented to each relay first. The returned connection is
// usually limited (relayed): open streams with network.WithAllowLimitedConn;
// DCUtR may later add a direct one.
func (m *Manager) Dial(ctx context.Context, target peer.ID) (network.Conn, error) {
	known := m.Relays()
	if len(known) == 0 {
		if err := m.Refresh(ctx); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoRelays, err)
		}
		known = m.Relays()
	}
	if len(known) == 0 {
		return nil, ErrNoRelays
	}
	ranked := RankRelays(known, target.String())
	ranked = ranked[:min(len(ranked), m.cfg.relayCount+2)]
	dialCtx := network.WithAllowLimitedConn(ctx, "posrelay")
	var errs []error
	for _, r := range ranked {
		ai, err := r.AddrInfo()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := m.ensureTicket(ctx, ai); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		circuits := circuitAddrs(ai, "")
		m.h.Peerstore().AddAddrs(target, circuits, peerstore.TempAddrTTL)
		conn, err := m.h.Network().DialPeer(dialCtx, target)
		if err == nil {
			return conn, nil
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
