package posrelay

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns wraps one of them, so
// callers test with errors.Is; the wrapping message says what happened.
var (
	// ErrDiscovery: the discovery API could not be reached or answered with an error status.
	ErrDiscovery = errors.New("posrelay: discovery request failed")
	// ErrInvalidDocument: the relay list is not a JSON array (entries that are malformed are skipped, not errors).
	ErrInvalidDocument = errors.New("posrelay: invalid relay list document")
	// ErrResponseTooLarge: an HTTP answer was larger than the configured bound.
	ErrResponseTooLarge = errors.New("posrelay: response too large")
	// ErrTicketRequest: discovery did not issue a ticket (bad API key, unknown tier, rate limited, ...).
	ErrTicketRequest = errors.New("posrelay: ticket request failed")
	// ErrTicketRejected: a relay answered REJECTED to a presented ticket; see *TicketRejectedError for the reason.
	ErrTicketRejected = errors.New("posrelay: relay rejected the ticket")
	// ErrTicketProtocol: a relay's answer on /pos-relay/ticket/1.0.0 did not follow the protocol.
	ErrTicketProtocol = errors.New("posrelay: ticket protocol error")
	// ErrNoRelays: no usable relay is known (discovery empty or unreachable).
	ErrNoRelays = errors.New("posrelay: no relays known")
	// ErrNoReservation: no reservation was obtained in time.
	ErrNoReservation = errors.New("posrelay: no relay reservation")
	// ErrDialFailed: every relay ranked for the target refused or failed.
	ErrDialFailed = errors.New("posrelay: dial through relays failed")
	// ErrClosed: the manager was closed.
	ErrClosed = errors.New("posrelay: relay manager closed")
)

// TicketRejectedError carries the relay's reason (for example "expired",
// "wrong_peer", "revoked", "rate_limited"). It matches ErrTicketRejected.
type TicketRejectedError struct {
	Reason string
}

func (e *TicketRejectedError) Error() string {
	return fmt.Sprintf("posrelay: relay rejected the ticket: %s", e.Reason)
}

// Is makes errors.Is(err, ErrTicketRejected) true.
func (e *TicketRejectedError) Is(target error) bool { return target == ErrTicketRejected }

// HTTPStatusError is a non-2xx answer from the discovery API. It matches
// ErrDiscovery or ErrTicketRequest depending on the request.
type HTTPStatusError struct {
	sentinel error
	URL      string
	Status   int
	// Body is the start of the answer (at most 200 bytes), for the log.
	Body string
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("%v: %s answered %d %s", e.sentinel, e.URL, e.Status, e.Body)
}

func (e *HTTPStatusError) Unwrap() error { return e.sentinel }
