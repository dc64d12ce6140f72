import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { dialableRelayAddrs, MAX_RELAY_ADDRS, relayAddressProblem } from '@pos-relay/shared'

describe('relay address policy', () => {
  // [addr, problem by default, problem with publicOnly]
  const cases: [string, RegExp | undefined, RegExp | undefined][] = [
    ['/ip4/203.0.113.7/tcp/7373', undefined, undefined],
    ['/ip4/203.0.113.7/udp/7373/quic-v1', undefined, undefined],
    ['/dns4/relay.example.com/tcp/443/wss', undefined, undefined],
    ['/ip6/2001:db8::1/tcp/7373', undefined, undefined],
    ['/ip4/0.0.0.0/tcp/7373', /unspecified/, /unspecified/],
    ['/ip4/0.1.2.3/tcp/7373', /unspecified/, /unspecified/],
    ['/ip6/::/tcp/7373', /unspecified/, /unspecified/],
    ['/ip4/169.254.169.254/tcp/80', /link-local/, /link-local/],
    ['/ip6/::ffff:169.254.169.254/tcp/80', /link-local/, /link-local/],
    ['/ip6/fe80::1/tcp/7373', /link-local/, /link-local/],
    ['/ip6/febf::1/tcp/7373', /link-local/, /link-local/],
    ['/ip4/224.0.0.1/tcp/7373', /multicast/, /multicast/],
    ['/ip4/239.255.255.250/udp/1900/quic-v1', /multicast/, /multicast/],
    ['/ip6/ff02::1/tcp/7373', /multicast/, /multicast/],
    ['/ip4/255.255.255.255/tcp/7373', /broadcast/, /broadcast/],
    ['/ip4/127.0.0.1/tcp/7373', undefined, /loopback/],
    ['/ip6/::1/tcp/7373', undefined, /loopback/],
    ['/ip6/::ffff:127.0.0.1/tcp/7373', undefined, /loopback/],
    ['/dns/localhost/tcp/7373', undefined, /loopback/],
    ['/dns4/a.localhost./tcp/7373', undefined, /loopback/],
    ['/ip4/10.1.2.3/tcp/7373', undefined, /private/],
    ['/ip4/172.31.255.1/tcp/7373', undefined, /private/],
    ['/ip4/172.32.0.1/tcp/7373', undefined, undefined],
    ['/ip4/192.168.0.1/tcp/7373', undefined, /private/],
    ['/ip4/100.64.0.1/tcp/7373', undefined, /private/],
    ['/ip6/fd12::1/tcp/7373', undefined, /private/],
    ['/ip4/203.0.113.7/udp/53', /UDP other than \/quic-v1/, /UDP other than \/quic-v1/],
    ['/ip4/203.0.113.7/udp/7373/quic', /UDP other than \/quic-v1/, /UDP other than \/quic-v1/],
    ['/ip4/203.0.113.7/udp/7373/webrtc-direct', /UDP other than \/quic-v1/, /UDP other than \/quic-v1/],
    ['/ip4/203.0.113.7/tcp/0', /port 0/, /port 0/],
    ['/ip6zone/eth0/ip6/fe80::1/tcp/7373', /must start with/, /must start with/],
    ['/unix/tmp%2Fsock', /must start with/, /must start with/],
    ['not a multiaddr', /not a valid multiaddr/, /not a valid multiaddr/],
  ]
  for (const [addr, byDefault, publicOnly] of cases) {
    it(`${addr}: ${byDefault?.source ?? 'accepted'} / public only: ${publicOnly?.source ?? 'accepted'}`, () => {
      const problems = [relayAddressProblem(addr), relayAddressProblem(addr, { publicOnly: true })]
      for (const [problem, want] of [[problems[0], byDefault], [problems[1], publicOnly]] as const) {
        if (want == null) assert.equal(problem, undefined)
        else assert.match(problem ?? '(accepted)', want)
      }
    })
  }

  it('dialableRelayAddrs keeps the acceptable addrs in order, at most MAX_RELAY_ADDRS', () => {
    const good = Array.from({ length: MAX_RELAY_ADDRS + 4 }, (_, i) => `/ip4/203.0.113.7/tcp/${4000 + i}`)
    assert.deepEqual(dialableRelayAddrs(['/ip4/169.254.169.254/tcp/80', ...good]), good.slice(0, MAX_RELAY_ADDRS))
    assert.deepEqual(dialableRelayAddrs(['/ip4/10.0.0.1/tcp/1', '/ip4/203.0.113.7/tcp/1'], { publicOnly: true }), ['/ip4/203.0.113.7/tcp/1'])
  })
})
