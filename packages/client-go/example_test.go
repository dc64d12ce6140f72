package posrelay_test

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	posrelay "github.com/pos-relay/pos-relay/packages/client-go"
)

// A peer behind a NAT: reserve on the two relays ranked for it, with tickets
// from the account's API key, and dial another peer through its relays.
func Example() {
	h, err := libp2p.New(libp2p.EnableRelay(), libp2p.EnableHolePunching())
	if err != nil {
		panic(err)
	}
	defer h.Close()

	m, err := posrelay.New(h, "https://relays.example.com",
		posrelay.WithAPIKey("pra_..."),
		posrelay.WithRelayCount(2),
		posrelay.WithAddressPolicy(posrelay.AddressPolicy{PublicOnly: true}),
	)
	if err != nil {
		panic(err)
	}
	defer m.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		fmt.Println("no reservation yet:", err) // the manager keeps trying until Close
	}
	fmt.Println("reachable at", m.CircuitAddrs())

	target, _ := peer.Decode("12D3KooW...")
	conn, err := m.Dial(ctx, target)
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "app"), conn.RemotePeer(), "/my-app/1.0.0")
	if err == nil {
		s.Close()
	}
}
