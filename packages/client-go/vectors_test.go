package posrelay

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The shared vectors live in docs/protocol-vectors/ at the repo root (every
// client's tests load them); testdata/vectors/ holds this package's own cases
// in the same format. Set POS_RELAY_REQUIRE_VECTORS=1 (CI) to fail when the
// shared folder is missing instead of skipping it.
var vectorDirs = []string{filepath.Join("..", "..", "docs", "protocol-vectors"), filepath.Join("testdata", "vectors")}

type vectorFile[C any] struct {
	Description string `json:"description"`
	Cases       []C    `json:"cases"`
}

// eachVectorFile runs f on every folder's copy of name, as a subtest named after the folder.
func eachVectorFile[C any](t *testing.T, name string, f func(t *testing.T, cases []C)) {
	t.Helper()
	for _, dir := range vectorDirs {
		path := filepath.Join(dir, name)
		t.Run(dir, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) && dir == vectorDirs[0] && os.Getenv("POS_RELAY_REQUIRE_VECTORS") == "" {
				t.Skipf("%s not found (the shared vectors are not in this checkout)", path)
			}
			if err != nil {
				t.Fatal(err)
			}
			var file vectorFile[C]
			dec := json.NewDecoder(bytes.NewReader(raw))
			if err := dec.Decode(&file); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if len(file.Cases) == 0 {
				t.Fatalf("%s has no cases", path)
			}
			f(t, file.Cases)
		})
	}
}

type rankingCase struct {
	Name     string   `json:"name"`
	Key      string   `json:"key"`
	Relays   []Relay  `json:"relays"`
	Expected []string `json:"expected"`
}

func TestRankingVectors(t *testing.T) {
	eachVectorFile(t, "ranking.json", func(t *testing.T, cases []rankingCase) {
		for _, c := range cases {
			input := append([]Relay(nil), c.Relays...)
			got := []string{}
			for _, r := range RankRelays(c.Relays, c.Key) {
				got = append(got, r.ID)
			}
			want := append([]string{}, c.Expected...)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: got %v, want %v", c.Name, got, want)
			}
			if len(input) > 0 && !reflect.DeepEqual(input, c.Relays) {
				t.Errorf("%s: RankRelays modified its input", c.Name)
			}
		}
	})
}

type relayListCase struct {
	Name     string  `json:"name"`
	Policy   string  `json:"policy"`
	Document string  `json:"document"`
	Expected []Relay `json:"expected"`
	Error    string  `json:"error"`
}

func TestRelayListVectors(t *testing.T) {
	eachVectorFile(t, "relay-lists.json", func(t *testing.T, cases []relayListCase) {
		for _, c := range cases {
			var policy AddressPolicy
			switch c.Policy {
			case "default", "":
			case "public-only":
				policy.PublicOnly = true
			default:
				t.Fatalf("%s: unknown policy %q", c.Name, c.Policy)
			}
			got, err := ParseRelayList([]byte(c.Document), policy)
			if c.Error != "" {
				if c.Error != "invalid_document" {
					t.Fatalf("%s: unknown error kind %q", c.Name, c.Error)
				}
				if !errors.Is(err, ErrInvalidDocument) {
					t.Errorf("%s: got %v, %v; want ErrInvalidDocument", c.Name, got, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", c.Name, err)
				continue
			}
			if len(got) == 0 && len(c.Expected) == 0 {
				continue
			}
			if !reflect.DeepEqual(got, c.Expected) {
				t.Errorf("%s:\n got  %+v\n want %+v", c.Name, got, c.Expected)
			}
		}
	})
}

type ticketCase struct {
	Name       string  `json:"name"`
	RequestHex *string `json:"request_hex"`
	ReplyHex   string  `json:"reply_hex"`
	Outcome    string  `json:"outcome"`
	Reason     *string `json:"reason"`
}

// requestToken recovers the ticket from a request frame: the frame must be
// exactly what EncodeTicketRequest writes for it.
func requestToken(t *testing.T, c ticketCase) string {
	t.Helper()
	frame, err := hex.DecodeString(*c.RequestHex)
	if err != nil {
		t.Fatalf("%s: request_hex: %v", c.Name, err)
	}
	// skip the varint prefix to find the token, then check the whole frame by re-encoding
	i := 0
	for i < len(frame) && frame[i]&0x80 != 0 {
		i++
	}
	token := string(frame[i+1:])
	enc, err := EncodeTicketRequest(token)
	if err != nil || !bytes.Equal(enc, frame) {
		t.Errorf("%s: EncodeTicketRequest = %x, %v; want %x", c.Name, enc, err, frame)
	}
	return token
}

func TestTicketVectors(t *testing.T) {
	eachVectorFile(t, "tickets.json", func(t *testing.T, cases []ticketCase) {
		for _, c := range cases {
			if c.RequestHex != nil {
				requestToken(t, c)
			}
			reply, err := hex.DecodeString(c.ReplyHex)
			if err != nil {
				t.Fatalf("%s: reply_hex: %v", c.Name, err)
			}
			_, err = ReadTicketReply(bytes.NewReader(reply))
			checkTicketOutcome(t, c, err)
		}
	})
}

func checkTicketOutcome(t *testing.T, c ticketCase, err error) {
	t.Helper()
	switch c.Outcome {
	case "accepted":
		if err != nil {
			t.Errorf("%s: want accepted, got %v", c.Name, err)
		}
	case "rejected":
		var rej *TicketRejectedError
		if !errors.As(err, &rej) || !errors.Is(err, ErrTicketRejected) {
			t.Errorf("%s: want rejected, got %v", c.Name, err)
		} else if c.Reason != nil && rej.Reason != *c.Reason {
			t.Errorf("%s: reason %q, want %q", c.Name, rej.Reason, *c.Reason)
		}
	case "malformed":
		if !errors.Is(err, ErrTicketProtocol) {
			t.Errorf("%s: want ErrTicketProtocol, got %v", c.Name, err)
		}
	default:
		t.Fatalf("%s: unknown outcome %q", c.Name, c.Outcome)
	}
}

type failoverCase struct {
	Name       string   `json:"name"`
	Listener   string   `json:"listener"`
	RelayCount int      `json:"relay_count"`
	Relays     []Relay  `json:"relays"`
	Unusable   []string `json:"unusable"`
	Reserve    []string `json:"reserve"`
	Dial       []string `json:"dial"`
}

func TestFailoverVectors(t *testing.T) {
	eachVectorFile(t, "failover.json", func(t *testing.T, cases []failoverCase) {
		for _, c := range cases {
			peerOf := map[string]string{}
			for _, r := range c.Relays {
				peerOf[r.ID] = r.PeerID
			}
			unusable := map[string]bool{}
			for _, id := range c.Unusable {
				if p, ok := peerOf[id]; ok {
					unusable[p] = true
				} else {
					unusable[id] = true // not listed: must change nothing
				}
			}
			input := append([]Relay(nil), c.Relays...)
			ids := func(rs []Relay) []string {
				out := []string{}
				for _, r := range rs {
					out = append(out, r.ID)
				}
				return out
			}
			if got := ids(RelaysToReserve(c.Relays, c.Listener, c.RelayCount, unusable)); !reflect.DeepEqual(got, append([]string{}, c.Reserve...)) {
				t.Errorf("%s: reserve %v, want %v", c.Name, got, c.Reserve)
			}
			if got := ids(RelaysToDial(c.Relays, c.Listener, c.RelayCount)); !reflect.DeepEqual(got, append([]string{}, c.Dial...)) {
				t.Errorf("%s: dial %v, want %v", c.Name, got, c.Dial)
			}
			if !reflect.DeepEqual(input, c.Relays) {
				t.Errorf("%s: modified its input", c.Name)
			}
		}
	})
}
