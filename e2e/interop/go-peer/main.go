// pos-relay NAT lab: a small go-libp2p peer (TCP + Noise + Yamux only,
// identify, ping, Circuit Relay v2 client, DCUtR hole punching). Test-only;
// built by ../build.sh.
//
// Same command-line contract as ../js-peer/peer.ts and ../rust-peer:
//
//	go-peer --mode listen --relay <relay multiaddr with /p2p/> [--ready-file F]
//	go-peer --mode dial --relay <relay multiaddr> --peer <listener id> --payload-bytes N
//	        [--marker TEXT] [--direct-timeout-ms MS] [--no-dcutr]
//	go-peer ... --public-cidr 10.213.0.0/16
//	go-peer ... --discovery URL --api-key KEY
//
// listen/dial print exactly one JSON result line on stdout (and to --out-file):
//
//	{"impl":"go","role":"dialer","ok":true,"connection":"relayed"|"direct","remote_addr":"...","sha256":"...","bytes":N, ...}
//
// --public-cidr: go-libp2p starts DCUtR only once it holds an address that
// manet.IsPublicAddr accepts, and drops private (RFC 1918) observed addresses
// from hole punching. The NAT lab's "internet" is a private test range inside
// network namespaces with no uplink, so this test-only flag removes exactly
// that range from the process's copy of manet.Private4. Nothing else changes.
//
// --discovery/--api-key: get an account ticket from the discovery API and
// present it to the relay before reserving or dialing, as a relay with --auth
// requires, with our Go client library's ticket functions (packages/client-go).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	posrelay "github.com/pos-relay/pos-relay/packages/client-go"
)

const payloadProtocol = protocol.ID("/pos-relay-interop/payload/1.0.0")

var (
	mode          = flag.String("mode", "", "listen | dial")
	relayFlag     = flag.String("relay", "", "relay multiaddr ending in /p2p/<relay id>")
	peerFlag      = flag.String("peer", "", "listener peer id (dial)")
	payloadBytes  = flag.Int64("payload-bytes", 1<<20, "bytes to send (dial)")
	marker        = flag.String("marker", "", "payload is this text repeated (default: pseudo-random bytes)")
	outFile       = flag.String("out-file", "", "also write the result line here")
	readyFile     = flag.String("ready-file", "", "listener: write {peer_id, addr} here once reserved")
	timeoutMs     = flag.Int64("timeout-ms", 60000, "overall timeout")
	directTimeout = flag.Int64("direct-timeout-ms", 10000, "dialer: how long to wait for a direct (hole-punched) connection before sending over the relay")
	noDcutr       = flag.Bool("no-dcutr", false, "disable hole punching")
	listenFlag    = flag.String("listen", "/ip4/0.0.0.0/tcp/0", "direct TCP listen address")
	publicCIDR    = flag.String("public-cidr", "", "test only: treat this private range as public (see header)")
	discoveryFlag = flag.String("discovery", "", "discovery API URL (tickets, with --api-key)")
	apiKey        = flag.String("api-key", "", "account API key: get a ticket and present it to the relay before reserving or dialing")
)

func logEvent(event string, kv ...any) {
	m := map[string]any{"event": event}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	fmt.Fprintln(os.Stderr, string(b))
}

type result struct {
	Impl       string `json:"impl"`
	Role       string `json:"role"`
	OK         bool   `json:"ok"`
	Connection string `json:"connection,omitempty"`
	RemoteAddr string `json:"remote_addr,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
	Bytes      int64  `json:"bytes"`
	PeerID     string `json:"peer_id,omitempty"`
	RemotePeer string `json:"remote_peer,omitempty"`
	Upgraded   *int64 `json:"upgraded_after_ms"`
	ElapsedMs  int64  `json:"elapsed_ms,omitempty"`
	Error      string `json:"error,omitempty"`
}

func emit(r result) {
	r.Impl = "go"
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	if *outFile != "" {
		_ = os.WriteFile(*outFile, append(b, '\n'), 0o644)
	}
}

// excludeCIDR splits parent into the CIDRs that cover parent minus child.
func excludeCIDR(parent, child *net.IPNet) []*net.IPNet {
	pOnes, bits := parent.Mask.Size()
	cOnes, _ := child.Mask.Size()
	if !parent.Contains(child.IP) || cOnes < pOnes {
		return []*net.IPNet{parent}
	}
	var out []*net.IPNet
	cur := &net.IPNet{IP: parent.IP.Mask(parent.Mask), Mask: parent.Mask}
	for ones := pOnes; ones < cOnes; ones++ {
		mask := net.CIDRMask(ones+1, bits)
		lower := &net.IPNet{IP: cur.IP.Mask(mask), Mask: mask}
		upperIP := make(net.IP, len(lower.IP))
		copy(upperIP, lower.IP)
		byteIdx, bit := ones/8, 7-uint(ones%8)
		upperIP[byteIdx] |= 1 << bit
		upper := &net.IPNet{IP: upperIP, Mask: mask}
		if lower.Contains(child.IP) {
			out = append(out, upper)
			cur = lower
		} else {
			out = append(out, lower)
			cur = upper
		}
	}
	return out
}

func treatAsPublic(cidr string) error {
	_, child, err := net.ParseCIDR(cidr)
	if err != nil {
		return err
	}
	child.IP = child.IP.To4()
	if child.IP == nil {
		return errors.New("--public-cidr: IPv4 only")
	}
	var next []*net.IPNet
	for _, n := range manet.Private4 {
		p := &net.IPNet{IP: n.IP.To4(), Mask: n.Mask}
		if p.IP == nil {
			next = append(next, n)
			continue
		}
		next = append(next, excludeCIDR(p, child)...)
	}
	manet.Private4 = next
	return nil
}

// payload: the marker repeated, or a xorshift stream (same generator as rust-peer).
type payload struct {
	marker []byte
	state  uint64
	off    int
}

func (p *payload) fill(buf []byte) {
	if len(p.marker) > 0 {
		for i := range buf {
			buf[i] = p.marker[p.off%len(p.marker)]
			p.off++
		}
		return
	}
	for i := 0; i < len(buf); i += 8 {
		p.state ^= p.state << 13
		p.state ^= p.state >> 7
		p.state ^= p.state << 17
		for j := 0; j < 8 && i+j < len(buf); j++ {
			buf[i+j] = byte(p.state >> (8 * j))
		}
	}
}

func isRelayed(a ma.Multiaddr) bool { return strings.Contains(a.String(), "/p2p-circuit") }

func directConn(h host.Host, p peer.ID) network.Conn {
	for _, c := range h.Network().ConnsToPeer(p) {
		if !isRelayed(c.RemoteMultiaddr()) && !c.Stat().Limited {
			return c
		}
	}
	return nil
}

func connKind(c network.Conn) string {
	if isRelayed(c.RemoteMultiaddr()) {
		return "relayed"
	}
	return "direct"
}

func main() {
	flag.Parse()
	role := "dialer"
	if *mode == "listen" {
		role = "listener"
	}
	fail := func(id string, err error) {
		emit(result{Role: role, OK: false, PeerID: id, Error: err.Error()})
		os.Exit(1)
	}
	if *publicCIDR != "" {
		if err := treatAsPublic(*publicCIDR); err != nil {
			fail("", err)
		}
	}
	relayAddr, err := ma.NewMultiaddr(*relayFlag)
	if err != nil {
		fail("", fmt.Errorf("bad --relay: %w", err))
	}
	relayInfo, err := peer.AddrInfoFromP2pAddr(relayAddr)
	if err != nil {
		fail("", fmt.Errorf("--relay must end in /p2p/<id>: %w", err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeoutMs)*time.Millisecond)
	defer cancel()

	opts := []libp2p.Option{
		libp2p.ListenAddrStrings(*listenFlag),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.EnableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.ResourceManager(mustRcmgr()),
		libp2p.UserAgent("pos-relay-interop/go-peer"),
		libp2p.DisableMetrics(),
	}
	if !*noDcutr {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		fail("", err)
	}
	defer h.Close()
	self := h.ID().String()
	logEvent("start", "peer_id", self, "mode", *mode, "listen", fmt.Sprint(h.Addrs()))
	started := time.Now()
	var upgradedAfter *int64
	markUpgrade := func() {
		if upgradedAfter == nil {
			v := time.Since(started).Milliseconds()
			upgradedAfter = &v
		}
	}

	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		logEvent("connection", "peer", c.RemotePeer().String(), "addr", c.RemoteMultiaddr().String(), "relayed", isRelayed(c.RemoteMultiaddr()), "limited", c.Stat().Limited)
	}})

	if err := h.Connect(ctx, *relayInfo); err != nil {
		fail(self, fmt.Errorf("connect relay: %w", err))
	}
	if !*noDcutr {
		// go-libp2p's hole punch service starts (registers /libp2p/dcutr and its
		// connection notifiee) only once identify gave us a public address; a
		// relayed connection that arrives before that is never upgraded, so wait
		// for it (a long-running peer has it long before anyone dials).
		deadline := time.Now().Add(15 * time.Second)
		for !hasProtocol(h, "/libp2p/dcutr") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		logEvent("dcutr_ready", "ready", hasProtocol(h, "/libp2p/dcutr"), "elapsed_ms", time.Since(started).Milliseconds())
	}

	if *apiKey != "" {
		if *discoveryFlag == "" {
			fail(self, errors.New("--api-key needs --discovery"))
		}
		ticket, err := posrelay.NewTicketClient(*discoveryFlag, *apiKey, h.ID(), nil).Current(ctx)
		if err != nil {
			fail(self, fmt.Errorf("get ticket: %w", err))
		}
		if _, err := posrelay.PresentTicket(ctx, h, relayInfo.ID, ticket.Token); err != nil {
			fail(self, fmt.Errorf("present ticket: %w", err))
		}
		logEvent("ticket_accepted", "jti", ticket.JTI)
	}

	switch *mode {
	case "listen":
		done := make(chan result, 1)
		h.SetStreamHandler(payloadProtocol, func(s network.Stream) {
			defer s.Close()
			hash := sha256.New()
			n, err := io.Copy(hash, s)
			r := result{Role: "listener", PeerID: self, RemotePeer: s.Conn().RemotePeer().String(),
				Connection: connKind(s.Conn()), RemoteAddr: s.Conn().RemoteMultiaddr().String(), Bytes: n}
			if err != nil {
				r.Error = "read: " + err.Error()
				done <- r
				return
			}
			r.SHA256 = hex.EncodeToString(hash.Sum(nil))
			reply, _ := json.Marshal(map[string]any{"bytes": n, "sha256": r.SHA256})
			if _, err := s.Write(append(reply, '\n')); err != nil {
				r.Error = "write reply: " + err.Error()
			}
			_ = s.CloseWrite()
			r.OK = r.Error == ""
			done <- r
		})
		h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
			if !isRelayed(c.RemoteMultiaddr()) && c.RemotePeer() != relayInfo.ID {
				markUpgrade()
			}
		}})
		if _, err := client.Reserve(ctx, h, *relayInfo); err != nil {
			fail(self, fmt.Errorf("reserve: %w", err))
		}
		circuit := relayAddr.Encapsulate(ma.StringCast("/p2p-circuit/p2p/" + self))
		logEvent("reserved", "addr", circuit.String())
		if *readyFile != "" {
			b, _ := json.Marshal(map[string]string{"peer_id": self, "addr": circuit.String()})
			_ = os.WriteFile(*readyFile+".tmp", append(b, '\n'), 0o644)
			_ = os.Rename(*readyFile+".tmp", *readyFile)
		}
		select {
		case r := <-done:
			r.Upgraded = upgradedAfter
			emit(r)
			time.Sleep(time.Second) // let the reply reach the dialer
			if !r.OK {
				os.Exit(1)
			}
		case <-ctx.Done():
			fail(self, errors.New("timed out waiting for the dialer's payload"))
		}

	case "dial":
		target, err := peer.Decode(*peerFlag)
		if err != nil {
			fail(self, fmt.Errorf("--peer: %w", err))
		}
		circuit := relayAddr.Encapsulate(ma.StringCast("/p2p-circuit"))
		lctx := network.WithAllowLimitedConn(ctx, "interop")
		if err := h.Connect(lctx, peer.AddrInfo{ID: target, Addrs: []ma.Multiaddr{circuit}}); err != nil {
			fail(self, fmt.Errorf("dial %s via relay: %w", target, err))
		}
		// wait for DCUtR to give us a direct connection (go hole punches on its own)
		wait := time.Duration(*directTimeout) * time.Millisecond
		if *noDcutr {
			wait = 0
		}
		deadline := time.Now().Add(wait)
		for directConn(h, target) == nil && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		if directConn(h, target) != nil {
			markUpgrade()
		}
		logEvent("sending", "bytes", *payloadBytes)
		// the swarm picks the best connection: unlimited (direct) before limited (relayed)
		s, err := h.NewStream(lctx, target, payloadProtocol)
		if err != nil {
			fail(self, fmt.Errorf("open stream: %w", err))
		}
		hash := sha256.New()
		p := &payload{marker: []byte(*marker), state: 0x9e3779b97f4a7c15}
		buf := make([]byte, 64*1024)
		var sent int64
		for sent < *payloadBytes {
			n := int64(len(buf))
			if *payloadBytes-sent < n {
				n = *payloadBytes - sent
			}
			p.fill(buf[:n])
			hash.Write(buf[:n])
			if _, err := s.Write(buf[:n]); err != nil {
				fail(self, fmt.Errorf("write: %w", err))
			}
			sent += n
		}
		if err := s.CloseWrite(); err != nil {
			fail(self, fmt.Errorf("close write: %w", err))
		}
		replyBytes, err := io.ReadAll(s)
		if err != nil {
			fail(self, fmt.Errorf("read reply: %w", err))
		}
		var reply struct {
			Bytes  int64  `json:"bytes"`
			SHA256 string `json:"sha256"`
		}
		sum := hex.EncodeToString(hash.Sum(nil))
		r := result{Role: "dialer", PeerID: self, RemotePeer: target.String(), Connection: connKind(s.Conn()),
			RemoteAddr: s.Conn().RemoteMultiaddr().String(), SHA256: sum, Bytes: sent, Upgraded: upgradedAfter,
			ElapsedMs: time.Since(started).Milliseconds()}
		if err := json.Unmarshal(replyBytes, &reply); err != nil {
			r.Error = "bad reply: " + string(replyBytes)
		} else if reply.SHA256 != sum || reply.Bytes != sent {
			r.Error = fmt.Sprintf("listener got %d bytes sha256 %s", reply.Bytes, reply.SHA256)
		}
		r.OK = r.Error == ""
		_ = s.Close()
		emit(r)
		if !r.OK {
			os.Exit(1)
		}
	default:
		fail(self, fmt.Errorf("unknown --mode %q", *mode))
	}
}

func hasProtocol(h host.Host, id protocol.ID) bool {
	for _, p := range h.Mux().Protocols() {
		if p == id {
			return true
		}
	}
	return false
}

func mustRcmgr() network.ResourceManager {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		panic(err)
	}
	return rm
}
