package posrelay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-varint"
)

// TicketProtocol is the relay's protocol for presenting an account ticket
// (relay-image/src/auth.ts): the client writes the ticket as one
// varint-length-prefixed message, the relay answers one length-prefixed JSON
// object {"status":"OK"|"REJECTED","reason":...}.
const TicketProtocol = protocol.ID("/pos-relay/ticket/1.0.0")

// MaxTicketBytes is the largest message either side of TicketProtocol
// accepts; the relay refuses a larger ticket unread.
const MaxTicketBytes = 4096

// RenewFraction of a ticket's lifetime after which it is replaced.
const RenewFraction = 0.8

// Ticket is a short-lived relay ticket bound to one peer id.
type Ticket struct {
	Token     string // compact JWS; a secret: never log it
	JTI       string
	Account   string
	Tier      string
	IssuedAt  time.Time // when we received it (our clock)
	ExpiresAt time.Time
}

// RenewAt is when 80 % of the ticket's lifetime has passed.
func (t Ticket) RenewAt() time.Time {
	life := t.ExpiresAt.Sub(t.IssuedAt)
	return t.IssuedAt.Add(time.Duration(float64(life) * RenewFraction))
}

// TicketClient gets tickets from the discovery API with an account API key
// (POST /api/p2p/tickets) and replaces them at 80 % of their lifetime. Safe
// for concurrent use; concurrent callers share one request.
type TicketClient struct {
	discoveryURL string
	apiKey       string
	peerID       peer.ID
	client       *http.Client
	now          func() time.Time

	mu     sync.Mutex
	ticket *Ticket
}

// NewTicketClient returns a client for peerID's tickets. httpClient may be nil.
func NewTicketClient(discoveryURL, apiKey string, peerID peer.ID, httpClient *http.Client) *TicketClient {
	return &TicketClient{discoveryURL: discoveryURL, apiKey: apiKey, peerID: peerID, client: httpClient, now: time.Now}
}

// Current returns a ticket with at least 20 % of its lifetime left, asking
// discovery for a new one when needed.
func (c *TicketClient) Current(ctx context.Context) (Ticket, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ticket != nil && c.now().Before(c.ticket.RenewAt()) {
		return *c.ticket, nil
	}
	t, err := c.fetch(ctx)
	if err != nil {
		return Ticket{}, err
	}
	c.ticket = &t
	return t, nil
}

// RenewIn is how long until the current ticket should be replaced (0 when there is none).
func (c *TicketClient) RenewIn() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ticket == nil {
		return 0
	}
	return max(0, c.ticket.RenewAt().Sub(c.now()))
}

type ticketAnswer struct {
	Ticket    string `json:"ticket"`
	JTI       string `json:"jti"`
	ExpiresAt string `json:"expires_at"`
	Account   string `json:"account"`
	Tier      string `json:"tier"`
}

func (c *TicketClient) fetch(ctx context.Context) (Ticket, error) {
	u, err := endpoint(c.discoveryURL, "api/p2p/tickets")
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: %v", ErrTicketRequest, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	payload, _ := json.Marshal(map[string]string{"peer_id": c.peerID.String()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: %v", ErrTicketRequest, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Content-Type", "application/json")
	// a ticket answer is a few hundred bytes
	body, err := doBounded(c.client, req, 64<<10, ErrTicketRequest)
	if err != nil {
		return Ticket{}, err
	}
	var a ticketAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return Ticket{}, fmt.Errorf("%w: answer is not the documented JSON: %v", ErrTicketRequest, err)
	}
	exp, err := time.Parse(time.RFC3339Nano, a.ExpiresAt)
	if a.Ticket == "" || err != nil {
		return Ticket{}, fmt.Errorf("%w: answer lacks ticket or a valid expires_at", ErrTicketRequest)
	}
	return Ticket{Token: a.Ticket, JTI: a.JTI, Account: a.Account, Tier: a.Tier, IssuedAt: c.now(), ExpiresAt: exp}, nil
}

// TicketReply is the relay's answer to a presented ticket.
type TicketReply struct {
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
	Account   string `json:"account,omitempty"`
	Tier      string `json:"tier,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

// EncodeTicketRequest frames a ticket as the client writes it on TicketProtocol.
func EncodeTicketRequest(token string) ([]byte, error) {
	if len(token) > MaxTicketBytes {
		return nil, fmt.Errorf("%w: a ticket must be at most %d bytes, got %d", ErrTicketProtocol, MaxTicketBytes, len(token))
	}
	return append(varint.ToUvarint(uint64(len(token))), token...), nil
}

// ReadTicketReply reads one reply frame. It returns the reply when the relay
// accepted the ticket, *TicketRejectedError (matching ErrTicketRejected) when
// it refused, and an error matching ErrTicketProtocol for anything else.
func ReadTicketReply(r io.Reader) (TicketReply, error) {
	br := bufio.NewReaderSize(r, 64)
	n, err := varint.ReadUvarint(br)
	if err != nil {
		return TicketReply{}, fmt.Errorf("%w: reading the reply length: %w", ErrTicketProtocol, err)
	}
	if n > MaxTicketBytes {
		return TicketReply{}, fmt.Errorf("%w: reply of %d bytes exceeds %d", ErrTicketProtocol, n, MaxTicketBytes)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(br, msg); err != nil {
		return TicketReply{}, fmt.Errorf("%w: reading the reply: %w", ErrTicketProtocol, err)
	}
	return DecodeTicketReply(msg)
}

// DecodeTicketReply judges one reply message (without its length prefix).
func DecodeTicketReply(msg []byte) (TicketReply, error) {
	var reply TicketReply
	var fields map[string]json.RawMessage
	// encoding/json would replace invalid UTF-8 silently; the protocol says UTF-8 JSON
	if !utf8.Valid(msg) {
		return TicketReply{}, fmt.Errorf("%w: reply is not UTF-8", ErrTicketProtocol)
	}
	if err := json.Unmarshal(msg, &fields); err != nil || fields == nil {
		return TicketReply{}, fmt.Errorf("%w: reply is not a JSON object", ErrTicketProtocol)
	}
	if !jsonString(fields["status"], &reply.Status) {
		return TicketReply{}, fmt.Errorf("%w: reply has no status string", ErrTicketProtocol)
	}
	_ = json.Unmarshal(msg, &reply) // optional fields; wrong types leave them empty
	switch reply.Status {
	case "OK":
		return reply, nil
	case "REJECTED":
		reason := ""
		if !jsonString(fields["reason"], &reason) || reason == "" {
			reason = "unknown"
		}
		return reply, &TicketRejectedError{Reason: reason}
	default:
		return TicketReply{}, fmt.Errorf("%w: unknown status %q", ErrTicketProtocol, reply.Status)
	}
}

// PresentTicket presents token to relay (connecting if needed) and returns the
// relay's answer; see ReadTicketReply for the errors. Without a deadline on
// ctx it gives up after 10 s.
func PresentTicket(ctx context.Context, h host.Host, relay peer.ID, token string) (TicketReply, error) {
	frame, err := EncodeTicketRequest(token)
	if err != nil {
		return TicketReply{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	s, err := h.NewStream(ctx, relay, TicketProtocol)
	if err != nil {
		return TicketReply{}, fmt.Errorf("open %s to %s: %w", TicketProtocol, relay, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if _, err := s.Write(frame); err != nil {
		s.Reset()
		return TicketReply{}, fmt.Errorf("%w: writing the ticket: %w", ErrTicketProtocol, err)
	}
	reply, err := ReadTicketReply(s)
	if err != nil && !errors.Is(err, ErrTicketRejected) {
		s.Reset()
	}
	return reply, err
}
