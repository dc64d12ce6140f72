package posrelay

import "time"

// The failover rule (docs/protocol.md section 4, "When a relay fails"; vectors failover.json).
// The pure parts are here; Manager applies them.

// RelaysToReserve is what a listener holds reservations on: the first
// relayCount relays of its own ranking (key = its peer id) whose peer id is
// not in unusable (relays that failed and have not been retried successfully
// since), in rank order. The input is not modified.
func RelaysToReserve(relays []Relay, self string, relayCount int, unusable map[string]bool) []Relay {
	out := make([]Relay, 0, min(relayCount, len(relays)))
	for _, r := range RankRelays(relays, self) {
		if len(out) == relayCount {
			break
		}
		if !unusable[r.PeerID] {
			out = append(out, r)
		}
	}
	return out
}

// RelaysToDial is what a dialer of target tries, in order: the first
// relayCount + 2 relays of target's ranking. The dialer does not know what
// failed for the target, so it covers a listener whose first two relays did.
func RelaysToDial(relays []Relay, target string, relayCount int) []Relay {
	ranked := RankRelays(relays, target)
	return ranked[:min(len(ranked), relayCount+ExtraDialRelays)]
}

// Failover timings (docs/protocol.md section 6).
const (
	// RetryInitial and RetryMax bound the backoff of retrying an unusable relay: 0.5 s doubling to 10 s.
	RetryInitial = 500 * time.Millisecond
	RetryMax     = 10 * time.Second
	// RetryJitter: each retry delay is spread by ±20 %, so the peers of a relay that comes back do not retry in step.
	RetryJitter = 0.2
	// ReserveTimeout: connecting to a relay, presenting the ticket and reserving give up after this (the relay is then unusable).
	ReserveTimeout = 10 * time.Second
	// RefreshSpread and RefreshMinGap: a relay failure schedules one discovery refresh after a uniform
	// 0..RefreshSpread delay, at most one per RefreshMinGap.
	RefreshSpread = 2 * time.Second
	RefreshMinGap = 10 * time.Second
)

// retryDelay is the wait before the next retry of a relay that failed
// `failures` times in a row (failures >= 1); random is uniform in [0, 1).
func retryDelay(failures int, random float64) time.Duration {
	base := RetryInitial << min(max(failures-1, 0), 5)
	base = min(base, RetryMax)
	spread := float64(base) * RetryJitter
	return time.Duration(float64(base) - spread + random*2*spread)
}

// failureRefreshDelay is when, from now, the refresh a relay failure
// schedules runs: no sooner than RefreshMinGap after the last such refresh
// (lastRefresh zero: none yet), plus a uniform 0..RefreshSpread delay.
func failureRefreshDelay(now, lastRefresh time.Time, random float64) time.Duration {
	var wait time.Duration
	if !lastRefresh.IsZero() {
		wait = max(0, lastRefresh.Add(RefreshMinGap).Sub(now))
	}
	return wait + time.Duration(random*float64(RefreshSpread))
}
