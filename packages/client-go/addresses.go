package posrelay

import (
	"fmt"
	"net/netip"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
)

// MaxRelayAddrs bounds the addrs kept per relay entry (as discovery does on registration).
const MaxRelayAddrs = 16

// AddressPolicy says which relay addrs may be dialed. The zero value is the
// default policy (loopback and private ranges allowed: local mode, kind,
// private networks); PublicOnly refuses those too (public fleets).
// Unspecified, link-local (incl. the cloud metadata endpoint
// 169.254.169.254), multicast and broadcast addresses are always refused.
type AddressPolicy struct {
	PublicOnly bool
}

// The same ranges as packages/shared/src/addresses.ts.
var (
	neverPrefixes = []struct {
		what string
		p    netip.Prefix
	}{
		{"an unspecified address", netip.MustParsePrefix("0.0.0.0/8")},
		{"an unspecified address", netip.MustParsePrefix("::/128")},
		{"a link-local address", netip.MustParsePrefix("169.254.0.0/16")},
		{"a link-local address", netip.MustParsePrefix("fe80::/10")},
		{"a multicast address", netip.MustParsePrefix("224.0.0.0/4")},
		{"a multicast address", netip.MustParsePrefix("ff00::/8")},
		{"the broadcast address", netip.MustParsePrefix("255.255.255.255/32")},
	}
	localPrefixes = []struct {
		what string
		p    netip.Prefix
	}{
		{"a loopback address", netip.MustParsePrefix("127.0.0.0/8")},
		{"a loopback address", netip.MustParsePrefix("::1/128")},
		{"a private address", netip.MustParsePrefix("10.0.0.0/8")},
		{"a private address", netip.MustParsePrefix("172.16.0.0/12")},
		{"a private address", netip.MustParsePrefix("192.168.0.0/16")},
		{"a private address", netip.MustParsePrefix("100.64.0.0/10")}, // carrier-grade NAT
		{"a private address", netip.MustParsePrefix("fc00::/7")},      // unique local
	}
	hostProtocols = map[int]bool{
		ma.P_IP4: true, ma.P_IP6: true, ma.P_DNS: true, ma.P_DNS4: true, ma.P_DNS6: true, ma.P_DNSADDR: true,
	}
)

func ipProblem(ip netip.Addr, policy AddressPolicy) string {
	// an IPv4-mapped IPv6 address is judged by the IPv4 rules, so the mapping cannot smuggle one past them
	ip = ip.Unmap()
	for _, r := range neverPrefixes {
		if r.p.Contains(ip) {
			return fmt.Sprintf("%s is %s, which is never a relay address", ip, r.what)
		}
	}
	if !policy.PublicOnly {
		return ""
	}
	for _, r := range localPrefixes {
		if r.p.Contains(ip) {
			return fmt.Sprintf("%s is %s, refused by the public-addresses-only policy", ip, r.what)
		}
	}
	return ""
}

// RelayAddressProblem says why addr must not be dialed as a relay address
// under policy, or returns "" when it is acceptable. Only the host and the
// transport are judged; a /p2p suffix is the caller's business.
func RelayAddressProblem(addr ma.Multiaddr, policy AddressPolicy) string {
	if len(addr) == 0 {
		return "is empty"
	}
	host := &addr[0]
	code := host.Protocol().Code
	if !hostProtocols[code] {
		return fmt.Sprintf("must start with /ip4, /ip6, /dns, /dns4, /dns6 or /dnsaddr, not /%s", host.Protocol().Name)
	}
	switch code {
	case ma.P_IP4, ma.P_IP6:
		ip, ok := netip.AddrFromSlice(host.RawValue())
		if !ok {
			return "has an invalid IP address"
		}
		if p := ipProblem(ip, policy); p != "" {
			return p
		}
	default:
		name := strings.TrimSuffix(strings.ToLower(host.Value()), ".")
		if policy.PublicOnly && (name == "localhost" || strings.HasSuffix(name, ".localhost")) {
			return fmt.Sprintf("%s is a loopback name, refused by the public-addresses-only policy", host.Value())
		}
	}
	for i := range addr {
		c := &addr[i]
		code := c.Protocol().Code
		if (code == ma.P_TCP || code == ma.P_UDP) && c.Value() == "0" {
			return "has port 0, which cannot be dialed"
		}
		// plain UDP, QUIC draft-29, WebRTC: nothing our relays speak, and raw UDP is a reflection vector
		if code == ma.P_UDP && (i+1 >= len(addr) || addr[i+1].Protocol().Code != ma.P_QUIC_V1) {
			return "uses UDP other than /quic-v1"
		}
	}
	return ""
}
