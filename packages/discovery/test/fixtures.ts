import type { RelayRegistration, RelayStore } from '@pos-relay/discovery'

// Real Ed25519 PeerIds (base58btc), plus the CID form of the first one.
export const PEER_A = '12D3KooWGTT9QsbssEwn88dneQpv7Agw8MfFvS9jvdZ3V9GrqHNh'
export const PEER_A_CID = 'bafzaajaiaejcayvghuy7ygpvc4qem7uw37egxkutjj7ljwha45g6odsouj2sifi2'
export const PEER_B = '12D3KooWAVjAAKKvSEKMrYNrkBmfwTaWLMtKJ8UyaQrZPNH9udNS'
export const PEER_C = '12D3KooWLm1DZ3neUeQYQqGukqMC4SgdCrv7J8uADqiTAwCYM4Ay'

export function registration (id: string, peer = PEER_A, port = 4001): RelayRegistration {
  return { id, peer_id: peer, addrs: [`/ip4/203.0.113.7/tcp/${port}/p2p/${peer}`] }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** The ids `store` lists, in its order. */
export const listedIds = async (store: Pick<RelayStore, 'list'>) => (await store.list()).map((r) => r.id)
