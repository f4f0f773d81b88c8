package netstack

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	wgtun "golang.zx2c4.com/wireguard/tun"
	gnetstack "golang.zx2c4.com/wireguard/tun/netstack"
)

// Tunnel addresses: the benchmarking ranges of the safety rule. Side A is
// .2 / ::2, side B .1 / ::1. The outer UDP runs over 127.0.0.1.
var (
	addrA4 = netip.MustParseAddr("198.18.0.2")
	addrA6 = netip.MustParseAddr("2001:2::2")
	addrB4 = netip.MustParseAddr("198.18.0.1")
	addrB6 = netip.MustParseAddr("2001:2::1")
)

const tunnelMTU = 1420

// peer is one side of a test tunnel seen through the net interfaces, so
// that ustack's and gVisor's netstacks can play either side.
type peer struct {
	name   string
	dev    *device.Device
	listen func(port uint16) (net.Listener, error)
	dial   func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
	// us is set when the side is ustack's netstack.
	us *Net
	// gv is set when the side is gVisor's.
	gv *gnetstack.Net
}

// newSide makes a netstack (ustack's when ustack is set, else gVisor's)
// with addresses a4 and a6 and the DNS server dns.
func newSide(tb testing.TB, ustack bool, a4, a6, dns netip.Addr) (wgtun.Device, *peer) {
	tb.Helper()
	addrs := []netip.Addr{a4, a6}
	if ustack {
		dev, n, err := CreateNetTUN(addrs, []netip.Addr{dns}, tunnelMTU)
		if err != nil {
			tb.Fatal(err)
		}
		return dev, &peer{name: "ustack", us: n,
			listen: func(port uint16) (net.Listener, error) {
				return n.ListenTCPAddrPort(netip.AddrPortFrom(netip.Addr{}, port))
			},
			dial: func(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
				return n.DialContextTCPAddrPort(ctx, addr)
			}}
	}
	dev, n, err := gnetstack.CreateNetTUN(addrs, []netip.Addr{dns}, tunnelMTU)
	if err != nil {
		tb.Fatal(err)
	}
	return dev, &peer{name: "gvisor", gv: n,
		listen: func(port uint16) (net.Listener, error) {
			return n.ListenTCPAddrPort(netip.AddrPortFrom(netip.Addr{}, port))
		},
		dial: func(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
			return n.DialContextTCPAddrPort(ctx, addr)
		}}
}

// wgKey is an X25519 key pair in wireguard's UAPI hex form.
type wgKey struct{ priv, pub string }

func newKey(tb testing.TB) wgKey {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return wgKey{hex.EncodeToString(k.Bytes()), hex.EncodeToString(k.PublicKey().Bytes())}
}

// listenPort reads the UDP port a device bound.
func listenPort(tb testing.TB, d *device.Device) int {
	tb.Helper()
	cfg, err := d.IpcGet()
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(cfg, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			p, err := strconv.Atoi(v)
			if err != nil {
				tb.Fatal(err)
			}
			return p
		}
	}
	tb.Fatalf("no listen_port in %q", cfg)
	return 0
}

// tunnel is two wireguard-go devices in this process, peered over loopback
// UDP, each with a netstack as its TUN.
type tunnel struct {
	a, b *peer
}

// newTunnel builds a tunnel; aUstack and bUstack choose each side's
// netstack. Close tears it down.
func newTunnel(tb testing.TB, aUstack, bUstack bool) *tunnel {
	tb.Helper()
	devA, a := newSide(tb, aUstack, addrA4, addrA6, addrB4)
	devB, b := newSide(tb, bUstack, addrB4, addrB6, addrA4)
	a.name, b.name = "A:"+a.name, "B:"+b.name
	logger := device.NewLogger(device.LogLevelSilent, "")
	a.dev = device.NewDevice(devA, conn.NewDefaultBind(), logger)
	b.dev = device.NewDevice(devB, conn.NewDefaultBind(), logger)
	t := &tunnel{a: a, b: b}
	ka, kb := newKey(tb), newKey(tb)
	for _, s := range []struct {
		d *device.Device
		k wgKey
	}{{a.dev, ka}, {b.dev, kb}} {
		if err := s.d.IpcSet("private_key=" + s.k.priv + "\nlisten_port=0\n"); err != nil {
			t.Close()
			tb.Fatal(err)
		}
		if err := s.d.Up(); err != nil {
			t.Close()
			tb.Fatal(err)
		}
	}
	pa, pb := listenPort(tb, a.dev), listenPort(tb, b.dev)
	peerCfg := func(k wgKey, port int) string {
		return fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:%d\nallowed_ip=0.0.0.0/0\nallowed_ip=::/0\n", k.pub, port)
	}
	if err := a.dev.IpcSet(peerCfg(kb, pb)); err != nil {
		t.Close()
		tb.Fatal(err)
	}
	if err := b.dev.IpcSet(peerCfg(ka, pa)); err != nil {
		t.Close()
		tb.Fatal(err)
	}
	return t
}

// Close closes both devices (and with them their netstacks).
func (t *tunnel) Close() {
	t.a.dev.Close()
	t.b.dev.Close()
}

// content is a deterministic pseudo-random byte stream of a given length.
type content struct {
	r    *mrand.ChaCha8
	left int64
}

func newContent(n int64) *content {
	return &content{r: mrand.NewChaCha8([32]byte{'u', 's', 't', 'a', 'c', 'k'}), left: n}
}

func (c *content) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, _ := c.r.Read(p)
	c.left -= int64(n)
	return n, nil
}

// contentSum is the SHA-256 of newContent(n).
func contentSum(n int64) string {
	h := sha256.New()
	if _, err := io.Copy(h, newContent(n)); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// serveContent serves GET /N with N bytes of content on ln until the
// returned stop is called.
func serveContent(ln net.Listener) (stop func()) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.Copy(w, newContent(n))
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return func() {
		_ = srv.Close()
		<-done
	}
}

// httpClient dials every request through dial, to addr.
func httpClient(dial func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return nil, err
			}
			return dial(ctx, ap)
		},
		DisableCompression: true,
	}}
}

// getSum fetches url with c and returns the body's SHA-256 and length.
func getSum(ctx context.Context, c *http.Client, url string) (string, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("status %s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// httpURL is the URL of n bytes of content at addr.
func httpURL(addr netip.AddrPort, n int64) string {
	return "http://" + addr.String() + "/" + strconv.FormatInt(n, 10)
}

// waitTunnel dials until the handshake completes and a TCP connection
// through the tunnel succeeds (the first packets wait for the WireGuard
// handshake), or fails the test after a while.
func waitTunnel(tb testing.TB, from *peer, to netip.AddrPort) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := from.dial(ctx, to)
	if err != nil {
		tb.Fatalf("%s: first dial to %v: %v", from.name, to, err)
	}
	c.Close()
}
