package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tun"
)

// The TUN floor of `ustack bench`: `ustack bench reflect` answers UDP on a
// TUN with no TCP and no stack at all. It reads a packet, mirrors it
// (addresses and ports swapped, TTL reset, checksums recomputed) and writes
// it back, so a kernel-side UDP ping-pong through it measures what the TUN
// itself costs a round trip: the kernel's UDP send and receive, two TUN
// crossings, and one Go reader waking for the packet. No userspace stack on
// a TUN can answer faster; ustack's echo round trip over this floor is what
// its own TCP, demux and goroutine hand-offs add.

// reflectTTL is the TTL or hop limit of the mirrored packets.
const reflectTTL = 64

// Drop reasons of the reflector.
const (
	reflectBadIP    = "bad-ip"      // not a valid IPv4 or IPv6 packet
	reflectFragment = "fragment"    // an IPv4 fragment
	reflectNotUDP   = "not-udp"     // another protocol, or IPv6 extension headers
	reflectNotOurs  = "not-ours"    // not addressed to the reflector's address
	reflectBadUDP   = "bad-udp"     // a UDP length that does not match the packet
	reflectGSO      = "gso"         // a super-packet (the reflector takes plain packets)
	reflectWriteErr = "write-error" // the TUN refused the reply
)

// reflectPacket turns pkt, a UDP datagram to one of ours, into its mirror
// image in place, or says why it does not answer it.
func reflectPacket(pkt []byte, ours []netip.Addr) (ok bool, reason string) {
	if len(pkt) == 0 {
		return false, reflectBadIP
	}
	switch pkt[0] >> 4 {
	case 4:
		h, err := ip.ParseIPv4(pkt)
		if err != nil {
			return false, reflectBadIP
		}
		if h.IsFragment() {
			return false, reflectFragment
		}
		if h.Protocol() != ip.ProtocolUDP {
			return false, reflectNotUDP
		}
		if !slices.Contains(ours, h.Dst()) {
			return false, reflectNotOurs
		}
		u := h.Payload()
		if len(u) < ip.UDPHeaderLen || int(ip.UDP(u).Length()) != len(u) {
			return false, reflectBadUDP
		}
		h.SwapAddrs()
		h.SetTTL(reflectTTL)
		ip.PutUDPHeader(u, ip.UDP(u).DestinationPort(), ip.UDP(u).SourcePort(), h.SrcSlice(), h.DstSlice())
		return true, ""
	case 6:
		h, info, err := ip.ParseIPv6(pkt)
		if err != nil {
			return false, reflectBadIP
		}
		if info.Protocol != ip.ProtocolUDP || info.Offset != ip.IPv6HeaderLen {
			return false, reflectNotUDP
		}
		if !slices.Contains(ours, h.Dst()) {
			return false, reflectNotOurs
		}
		u := h.Payload()
		if len(u) < ip.UDPHeaderLen || int(ip.UDP(u).Length()) != len(u) {
			return false, reflectBadUDP
		}
		h.SwapAddrs()
		h.SetHopLimit(reflectTTL)
		ip.PutUDPHeader(u, ip.UDP(u).DestinationPort(), ip.UDP(u).SourcePort(), h.SrcSlice(), h.DstSlice())
		return true, ""
	}
	return false, reflectBadIP
}

// reflector mirrors UDP on a link until it closes.
type reflector struct {
	link tun.Link
	ours []netip.Addr
	// Written by run's goroutine only; read after it returns.
	reflected uint64
	drops     map[string]uint64
}

// run reads batches, mirrors what it can, and writes the replies of each
// batch back in one call.
func (r *reflector) run() error {
	n := max(r.link.BatchSize(), 1)
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, tun.Headroom+tun.MaxPacketSize)
	}
	sizes := make([]int, n)
	gso := make([]tun.GSO, n)
	var out [][]byte
	var outGSO []tun.GSO
	for {
		k, err := r.link.ReadGSO(bufs, sizes, gso, tun.Headroom)
		if errors.Is(err, tun.ErrClosed) {
			return nil
		}
		if err != nil && k == 0 {
			return err
		}
		out, outGSO = out[:0], outGSO[:0]
		for i := range k {
			if gso[i].IsGSO() {
				r.drops[reflectGSO]++
				continue
			}
			b := bufs[i][:tun.Headroom+sizes[i]]
			if ok, why := reflectPacket(b[tun.Headroom:], r.ours); !ok {
				r.drops[why]++
				continue
			}
			out, outGSO = append(out, b), append(outGSO, tun.GSO{})
		}
		for off := 0; off < len(out); {
			m, err := r.link.WriteGSO(out[off:], outGSO[off:], tun.Headroom)
			r.reflected += uint64(m)
			off += m
			if err != nil {
				if errors.Is(err, tun.ErrClosed) {
					return nil
				}
				r.drops[reflectWriteErr]++
				off++
			}
		}
	}
}

// summary is one line: what was reflected and what dropped, by reason.
func (r *reflector) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "reflected %d", r.reflected)
	for _, k := range slices.Sorted(maps.Keys(r.drops)) {
		fmt.Fprintf(&b, ", dropped %s %d", k, r.drops[k])
	}
	return b.String()
}

// runBenchReflect is `ustack bench reflect`, internal to `ustack bench`: it
// creates a TUN, mirrors the UDP sent to the bench address through it, and
// prints 'ready DEVICE ADDR'. SIGINT/SIGTERM stop it; it then prints its
// counts on stderr.
func runBenchReflect(args []string, stdout, stderr io.Writer) int {
	var name string
	var mtu int
	var offload bool
	fs := flag.NewFlagSet("bench reflect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&name, "tun", "ustack0", "name of the TUN device to create")
	fs.IntVar(&mtu, "mtu", 1500, "MTU of the TUN device (1280-65535)")
	fs.BoolVar(&offload, "offload", true, "virtio-net offloads on the TUN (as ustack serve has them)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack bench reflect [flags]\n\n"+
			"Internal to `ustack bench`, which runs it in a private network namespace: the TUN\n"+
			"floor. It creates a TUN (kernel side %s and %s) and answers every UDP datagram\n"+
			"sent to %s or %s with its mirror image (addresses and ports swapped,\n"+
			"checksums recomputed), with no TCP and no stack: a UDP ping-pong through it\n"+
			"measures the TUN's own round trip. Prints 'ready DEVICE ADDR'; SIGINT/SIGTERM stop\n"+
			"it, and it prints what it reflected and dropped (by reason) on stderr.\n\nflags:\n",
			benchHostAddrs[0], benchHostAddrs[1], benchAddrs[0], benchAddrs[1])
		fs.PrintDefaults()
	}
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ustack bench reflect: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if mtu < 1280 || mtu > 65535 {
		fmt.Fprintf(stderr, "ustack bench reflect: --mtu %d: want a value from 1280 to 65535\n", mtu)
		return exitUsage
	}
	if name == "" || len(name) > 15 {
		fmt.Fprintf(stderr, "ustack bench reflect: --tun %q: want an interface name of 1-15 characters\n", name)
		return exitUsage
	}
	// Its parent is the bench target, in the same private namespace; the
	// guard here is against init's (when it can be read).
	self, err1 := os.Readlink("/proc/self/ns/net")
	initNS, err2 := os.Readlink("/proc/1/ns/net")
	if err1 == nil && err2 == nil && self == initNS {
		fmt.Fprintf(stderr, "ustack bench reflect: %v\n", errBenchNotPrivate)
		return 1
	}
	t, err := tun.Create(tun.Options{Name: name, MTU: mtu, Offload: offload, HostAddrs: benchHostAddrs})
	if err != nil {
		fmt.Fprintf(stderr, "ustack bench reflect: %v\n", err)
		return 1
	}
	r := &reflector{link: t, drops: map[string]uint64{}}
	for _, a := range benchAddrs {
		r.ours = append(r.ours, a)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- r.run() }()
	fmt.Fprintf(stdout, "ready %s %s\n", t.Name(), benchAddrs[0])
	var rerr error
	select {
	case <-ctx.Done():
		t.Close()
		rerr = <-done
	case rerr = <-done:
		t.Close()
	}
	fmt.Fprintf(stderr, "bench reflect: %s\n", r.summary())
	if rerr != nil {
		fmt.Fprintf(stderr, "ustack bench reflect: %v\n", rerr)
		return 1
	}
	return 0
}

// udpEcho measures 64-byte UDP round trips for the duration, from a kernel
// socket to the server's UDP echo (port 7), and records them as workload
// w: through the reflector, the TUN floor under the echo figures; through
// a stack, its UDP path. A datagram lost (none should be: nothing else
// runs on the TUN) is counted and resent.
func (t *benchTarget) udpEcho(srv *benchServer, w string) error {
	c, err := net.Dial("udp", srv.hostPort(benchEchoPort))
	if err != nil {
		return err
	}
	defer c.Close()
	before, cpuErr := readCPU(srv)
	msg, got := benchEchoMessage(), make([]byte, 128)
	lost := 0
	samples, err := echoSamples(t.cfg.duration, func() error {
		for {
			if _, err := c.Write(msg); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := c.Read(got)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if lost++; lost > 10 {
					return fmt.Errorf("udp echo: %d datagrams lost", lost)
				}
				continue
			}
			if err != nil {
				return err
			}
			if n != len(msg) || string(got[:n]) != string(msg) {
				return fmt.Errorf("udp echo: got % x, sent % x", got[:n], msg)
			}
			return nil
		}
	})
	if err != nil {
		return err
	}
	var cpu *[2]cpuMeter
	if after, err := readCPU(srv); err == nil && cpuErr == nil {
		cpu = &[2]cpuMeter{before, after}
	}
	t.recordEcho(w, samples, cpu)
	t.res.Metrics[w+"_lost"] = float64(lost)
	return nil
}
