// pos-relay relay benchmark: go-libp2p's Circuit Relay v2 server as a small
// binary (TCP + Noise + Yamux, identify, ping). Test-only; built by ../build.sh.
//
//	go-relay --listen /ip4/127.0.0.1/tcp/0 [--max-reservations N]
//
// Prints one JSON line {"impl":"go","role":"relay","peer_id":...,"addrs":[...]}
// once listening, then serves until SIGINT/SIGTERM.
//
// Limits: go-libp2p's defaults (128 reservations, 8 per IP, 2 min / 128 KiB
// per circuit) are raised so a benchmark is comparable with pos-relay:
// --max-reservations for all reservation caps, 1 h / 4 GiB per circuit.
// Buffer size and everything else stay at go-libp2p's defaults. The resource
// manager is unlimited and the connection manager is off, so neither trims
// idle reservation connections.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

func main() {
	listen := flag.String("listen", "/ip4/127.0.0.1/tcp/0", "listen multiaddr")
	maxRes := flag.Int("max-reservations", 10000, "reservation caps (total, per IP, per ASN)")
	flag.Parse()

	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		panic(err)
	}
	h, err := libp2p.New(
		libp2p.ListenAddrStrings(*listen),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(&connmgr.NullConnMgr{}),
		libp2p.ForceReachabilityPublic(),
		libp2p.UserAgent("pos-relay-interop/go-relay"),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		panic(err)
	}
	res := relay.DefaultResources()
	res.Limit = &relay.RelayLimit{Duration: time.Hour, Data: 4 << 30}
	res.MaxReservations = *maxRes
	res.MaxReservationsPerIP = *maxRes
	res.MaxReservationsPerASN = *maxRes
	r, err := relay.New(h, relay.WithResources(res),
		// loopback/test addresses are fine in reservations here (default: public only)
		relay.WithReservationAddressFilter(func(ma.Multiaddr) bool { return true }))
	if err != nil {
		panic(err)
	}
	addrs := []string{}
	for _, a := range h.Addrs() {
		addrs = append(addrs, a.String()+"/p2p/"+h.ID().String())
	}
	b, _ := json.Marshal(map[string]any{"impl": "go", "role": "relay", "peer_id": h.ID().String(), "addrs": addrs, "pid": os.Getpid()})
	fmt.Println(string(b))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = r.Close()
	_ = h.Close()
}
