package posrelay

import (
	"testing"
	"time"
)

func TestRetryDelayDoublesFromHalfASecondToTenJittered(t *testing.T) {
	for _, c := range []struct {
		failures int
		base     time.Duration
	}{{1, 500 * time.Millisecond}, {2, time.Second}, {3, 2 * time.Second}, {5, 8 * time.Second}, {6, 10 * time.Second}, {40, 10 * time.Second}} {
		if got := retryDelay(c.failures, 0.5); got != c.base {
			t.Errorf("failures %d, no jitter: %v, want %v", c.failures, got, c.base)
		}
		lo, hi := retryDelay(c.failures, 0), retryDelay(c.failures, 0.999999)
		if lo != c.base*8/10 || hi < c.base*119/100 || hi > c.base*12/10 {
			t.Errorf("failures %d: spread %v..%v, want ±20 %% of %v", c.failures, lo, hi, c.base)
		}
	}
}

func TestFailureRefreshIsSpreadOverTwoSecondsAndAtMostOnePerTenSeconds(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	if got := failureRefreshDelay(now, time.Time{}, 0); got != 0 {
		t.Errorf("first refresh, random 0: %v, want 0", got)
	}
	if got := failureRefreshDelay(now, time.Time{}, 0.5); got != time.Second {
		t.Errorf("first refresh, random 0.5: %v, want 1 s", got)
	}
	// the last one 3 s ago: not before 7 s from now, then the spread
	if got := failureRefreshDelay(now, now.Add(-3*time.Second), 0.25); got != 7*time.Second+500*time.Millisecond {
		t.Errorf("3 s after the last: %v, want 7.5 s", got)
	}
	if got := failureRefreshDelay(now, now.Add(-time.Minute), 0); got != 0 {
		t.Errorf("a minute after the last: %v, want 0", got)
	}
}
