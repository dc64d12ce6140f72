// Command file-transfer is the Go version of examples/file-transfer: two
// peers exchange a file through a pos-relay relay, with tickets when the
// relays want them. Same flags and the same JSON lines on stdout as the
// JavaScript example, so any listener works with any sender.
//
//	file-transfer listen --discovery http://127.0.0.1:8080 --api-key KEY [--out DIR] [--relay-count N]
//	file-transfer send   --discovery http://127.0.0.1:8080 --api-key KEY --peer <peer id> --file PATH [--relay-count N]
//
// The file goes as "<sha256> <name>\n" followed by the bytes on
// /pos-relay-example/file/2.0.0; the receiver writes a part file, renames it to
// received-<name> only when the SHA-256 matches the announced one (a failed or
// cut-off transfer leaves no file that looks received, and prints
// receive_failed), and answers with the SHA-256 it computed, which the sender
// checks. --file and --out are relative to the working directory; a missing or
// unreadable --file or an unwritable --out is one line on stderr, exit code 2.
// The listener keeps running and takes any number of files; it prints
// {"event":"reserved","relay":...} / {"event":"reservation_lost","relay":...}
// lines as its reservations come and go (failover, docs/protocol.md section 4).
// --relay-count is the listener's relay count (default 2); a sender given the
// same number tries relayCount + 2 relays of the listener's ranking.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	posrelay "github.com/pos-relay/pos-relay/packages/client-go"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

const fileProtocol = protocol.ID("/pos-relay-example/file/2.0.0")

type options struct {
	discovery, apiKey, out, peer, file string
	timeout                            time.Duration
	relayCount                         int
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "listen" && os.Args[1] != "send") {
		fmt.Fprintln(os.Stderr, "usage: file-transfer listen|send --discovery URL [--api-key KEY] [--out DIR] [--peer ID --file PATH]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var o options
	fs.StringVar(&o.discovery, "discovery", envOr("DISCOVERY_URL", "http://127.0.0.1:8080"), "discovery API base URL (env DISCOVERY_URL)")
	fs.StringVar(&o.apiKey, "api-key", os.Getenv("API_KEY"), "the account's API key, when relays require tickets (env API_KEY)")
	fs.StringVar(&o.out, "out", ".", "listen: folder for received files")
	fs.StringVar(&o.peer, "peer", "", "send: the listener's peer id")
	fs.StringVar(&o.file, "file", "", "send: the file to send")
	fs.DurationVar(&o.timeout, "timeout", time.Minute, "send: give up after this long")
	fs.IntVar(&o.relayCount, "relay-count", 2, "relays the listener reserves on; a sender tries this + 2 relays of the listener's ranking")
	_ = fs.Parse(os.Args[2:])
	if o.relayCount < 1 {
		fmt.Fprintf(os.Stderr, "--relay-count must be a positive integer, not %d\n", o.relayCount)
		os.Exit(2)
	}

	// the user's mistakes, before any network work: one line, exit code 2
	if os.Args[1] == "listen" {
		o.out = mustWritableDir(o.out)
	} else if o.file != "" {
		o.file = mustReadableFile(o.file)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if os.Args[1] == "listen" {
		err = listen(ctx, o)
	} else {
		err = send(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "file-transfer:", err)
		os.Exit(1)
	}
}

func usageError(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "file-transfer: "+format+"\n", args...)
	os.Exit(2)
}

func reason(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file or directory"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	case errors.Is(err, syscall.ENOTDIR):
		return "not a directory"
	}
	return err.Error()
}

func mustReadableFile(given string) string {
	path, _ := filepath.Abs(given)
	f, err := os.Open(path)
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil && st.IsDir() {
			err = errors.New("is a directory")
		}
		f.Close()
	}
	if err != nil {
		usageError("cannot read --file %s (%s): %s", given, path, reason(err))
	}
	return path
}

func mustWritableDir(given string) string {
	path, _ := filepath.Abs(given)
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(path, 0o755); err == nil {
			st, err = os.Stat(path)
		}
	}
	if err == nil && !st.IsDir() {
		err = syscall.ENOTDIR
	}
	if err == nil {
		err = syscall.Access(path, 2) // W_OK
	}
	if err != nil {
		usageError("cannot write to --out %s (%s): %s", given, path, reason(err))
	}
	return path
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func printJSON(v any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

// logEvent: reserved and reservation_lost on stdout (the examples' contract), everything on stderr.
func logEvent(e posrelay.Event) {
	if e.Type == posrelay.EventReserved || e.Type == posrelay.EventReservationLost {
		printJSON(map[string]string{"event": string(e.Type), "relay": e.Relay.String()})
	}
	m := map[string]any{"event": string(e.Type)}
	if e.Relay != "" {
		m["relay"] = e.Relay.String()
	}
	if len(e.Relays) > 0 {
		m["relays"] = e.Relays
	}
	if e.Err != nil {
		m["error"] = e.Err.Error()
	}
	b, _ := json.Marshal(m)
	fmt.Fprintln(os.Stderr, string(b))
}

// newPeer: TCP and QUIC, Noise, Yamux, the circuit relay transport (on by
// default) and hole punching, and a relay manager fed by discovery.
func newPeer(o options) (host.Host, *posrelay.Manager, error) {
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(),
		libp2p.UserAgent("pos-relay-example/file-transfer-go"),
	)
	if err != nil {
		return nil, nil, err
	}
	opts := []posrelay.Option{posrelay.WithRelayCount(o.relayCount), posrelay.WithEventHandler(logEvent)}
	if o.apiKey != "" {
		opts = append(opts, posrelay.WithAPIKey(o.apiKey))
	}
	m, err := posrelay.New(h, o.discovery, opts...)
	if err != nil {
		h.Close()
		return nil, nil, err
	}
	return h, m, nil
}

func isRelayed(c network.Conn) bool {
	return c.Stat().Limited || strings.Contains(c.RemoteMultiaddr().String(), "/p2p-circuit")
}

type listening struct {
	Event  string   `json:"event"`
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
}

type received struct {
	Event   string `json:"event"`
	File    string `json:"file"`
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256"`
	Relayed bool   `json:"relayed"`
}

type receiveFailed struct {
	Event string  `json:"event"`
	File  *string `json:"file"`
	Bytes int64   `json:"bytes"`
	Error string  `json:"error"`
}

type sent struct {
	Event   string `json:"event"`
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256"`
	Intact  bool   `json:"intact"`
	Relayed bool   `json:"relayed"`
}

func listen(ctx context.Context, o options) error {
	h, m, err := newPeer(o)
	if err != nil {
		return err
	}
	defer h.Close()
	defer m.Close()
	h.SetStreamHandler(fileProtocol, func(s network.Stream) {
		defer s.Close()
		if err := receive(s, o.out); err != nil {
			fmt.Fprintln(os.Stderr, "file-transfer: receive:", err)
			s.Reset()
		}
	})
	startCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := m.Start(startCtx); err != nil {
		return err
	}
	addrs := []string{}
	for _, a := range m.CircuitAddrs() {
		addrs = append(addrs, a.String())
	}
	printJSON(listening{Event: "listening", PeerID: h.ID().String(), Addrs: addrs})
	<-ctx.Done()
	return nil
}

var headerPattern = regexp.MustCompile(`^([0-9a-f]{64}) (.+)$`)

// receive: one file into a part file, renamed to received-<name> only when
// its SHA-256 is the one the header announced; on failure the part file goes
// and receive_failed is printed. Answers with the SHA-256 computed here once
// all bytes came.
func receive(s network.Stream, outDir string) error {
	var name *string
	var n int64
	fail := func(err error) error {
		printJSON(receiveFailed{Event: "receive_failed", File: name, Bytes: n, Error: err.Error()})
		return err
	}
	r := bufio.NewReader(s)
	header, err := r.ReadString('\n')
	if err != nil || len(header) > 4096 {
		return fail(fmt.Errorf("reading the header: %v", err))
	}
	m := headerPattern.FindStringSubmatch(strings.TrimSuffix(header, "\n"))
	if m == nil {
		return fail(errors.New(`bad header: expected "<sha256> <name>"`))
	}
	base := filepath.Base(m[2])
	if base == "." || base == ".." || base == "/" {
		return fail(errors.New("bad header: empty file name"))
	}
	name = &base
	part := filepath.Join(outDir, fmt.Sprintf(".received-%s.%08x.part", base, rand.Uint32()))
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fail(err)
	}
	hash := sha256.New()
	n, err = io.Copy(io.MultiWriter(f, hash), r)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(part)
		return fail(err)
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	// the answer in every case: the sender compares it with what it sent
	_, werr := s.Write([]byte(sum))
	if sum != m[1] {
		os.Remove(part)
		return fail(fmt.Errorf("SHA-256 mismatch after %d bytes: got %s, the sender announced %s", n, sum, m[1]))
	}
	if err := os.Rename(part, filepath.Join(outDir, "received-"+base)); err != nil {
		os.Remove(part)
		return fail(err)
	}
	if werr != nil {
		return werr
	}
	printJSON(received{Event: "received", File: base, Bytes: n, SHA256: sum, Relayed: isRelayed(s.Conn())})
	return nil
}

func send(ctx context.Context, o options) error {
	if o.peer == "" || o.file == "" {
		return errors.New("send needs --peer <peer id> and --file <path>")
	}
	target, err := peer.Decode(o.peer)
	if err != nil {
		return fmt.Errorf("--peer: %w", err)
	}
	f, err := os.Open(o.file)
	if err != nil {
		return err
	}
	defer f.Close()
	// the header carries the SHA-256: the receiver keeps the file only if it matches
	announce := sha256.New()
	if _, err := io.Copy(announce, f); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	// a sender only dials: it needs no reservation of its own
	h, m, err := newPeer(o)
	if err != nil {
		return err
	}
	defer h.Close()
	defer m.Close()
	conn, err := m.Dial(ctx, target)
	if err != nil {
		return err
	}
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "file-transfer"), target, fileProtocol)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if _, err := s.Write([]byte(hex.EncodeToString(announce.Sum(nil)) + " " + filepath.Base(o.file) + "\n")); err != nil {
		return err
	}
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(s, hash), f)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return err
	}
	answer, err := io.ReadAll(io.LimitReader(s, 128))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	intact := string(answer) == sum
	printJSON(sent{Event: "sent", Bytes: n, SHA256: sum, Intact: intact, Relayed: isRelayed(conn)})
	if !intact {
		return fmt.Errorf("the receiver computed %q, we sent %s", answer, sum)
	}
	return nil
}
