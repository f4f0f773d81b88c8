package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tun"
)

// The plumbing of an emulated path (tun.Path) between network namespaces,
// shared by `ustack bench --path` and `ustack path`:
//
//	client ns                 hop ns (forwards)              server side
//	198.18.1.1 path0 ═router═ path1 198.18.1.254 ── 198.18.0.1 ─ server 198.18.0.2
//
// The router is this process: one TUN in the client namespace, one in the
// hop namespace, offloads off (plain MTU-sized packets, each counted at
// its size on the wire). The hop namespace's kernel forwards between the
// router's TUN and the server: a ustack or gVisor server creates its own
// TUN there (kernel side 198.18.0.1, the stack on .2), and a kernel server
// sits in a namespace of its own behind a veth pair, so every server is
// one forwarding hop behind the router.

// Addresses of the emulated path.
var (
	pathClientAddr = netip.MustParsePrefix("198.18.1.1/24")   // the client's TUN
	pathHopAddr    = netip.MustParsePrefix("198.18.1.254/24") // the hop's TUN
	pathServerNet  = netip.MustParsePrefix("198.18.0.0/24")   // where the servers live
	pathVethHop    = netip.MustParsePrefix("198.18.0.1/24")   // the hop's end of a kernel server's veth
	pathVethServer = netip.MustParsePrefix("198.18.0.2/24")   // the kernel server's end
	// pathClientNet is for a userspace client on the client side (ustack
	// dial --host-addr 198.18.2.1/24 --addr 198.18.2.2): the client
	// namespace forwards, the hop routes it back into the path.
	pathClientNet = netip.MustParsePrefix("198.18.2.0/24")
)

// Device names of the emulated path.
const (
	pathClientTUN  = "path0"
	pathHopTUN     = "path1"
	pathVethHopEnd = "pathv0"
	pathVethSrvEnd = "pathv1"
)

// netnsFD is an open network namespace (an nsfs descriptor keeps it alive
// even when no process is in it).
type netnsFD int

// openNetns opens a namespace by path (/proc/PID/ns/net, /run/netns/NAME).
func openNetns(path string) (netnsFD, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	return netnsFD(fd), nil
}

// newNetns creates an empty network namespace with loopback up.
func newNetns() (netnsFD, error) {
	var ns netnsFD = -1
	err := onLockedThread(func(orig int) error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("creating a network namespace: %w", err)
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ns = netnsFD(fd)
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		return err
	})
	if err != nil && ns >= 0 {
		ns.Close()
		ns = -1
	}
	return ns, err
}

// Close closes the descriptor; the namespace goes once nothing holds it.
func (ns netnsFD) Close() error { return unix.Close(int(ns)) }

// do runs fn on an OS thread moved into ns, then moves the thread back.
// Sockets, TUN devices and netlink requests fn makes belong to ns;
// goroutines it starts do not run in ns.
func (ns netnsFD) do(fn func() error) error {
	return onLockedThread(func(int) error {
		if err := unix.Setns(int(ns), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("entering a network namespace: %w", err)
		}
		return fn()
	})
}

// onLockedThread runs fn on a locked OS thread and puts the thread back in
// this process's namespace afterwards; if that fails the thread is left
// locked, so it dies with the goroutine instead of serving others.
func onLockedThread(fn func(orig int) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return // the thread stays locked and ends
		}
		defer unix.Close(orig)
		ferr := fn(orig)
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("returning to the original network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// startInNetns starts cmd with ns as its network namespace: the child is
// forked from a thread inside ns. (Its Pdeathsig would follow that thread,
// which goes back to the pool; callers kill their children themselves.)
func startInNetns(ns netnsFD, cmd *exec.Cmd) error {
	return ns.do(cmd.Start)
}

// setSysctls writes /proc/sys entries, which are those of the calling
// thread's network namespace (run it inside netnsFD.do).
func setSysctls(kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if err := os.WriteFile("/proc/sys/"+kv[i], []byte(kv[i+1]), 0); err != nil {
			return fmt.Errorf("setting %s: %w", kv[i], err)
		}
	}
	return nil
}

// pathRouter is a running emulated path between a client namespace and a
// hop namespace.
type pathRouter struct {
	path *tun.Path
	cfg  tun.PathConfig
}

// startPathRouter creates the router's TUN in each namespace, routes the
// server network from the client into it, turns on forwarding in the hop
// namespace, and starts forwarding through cfg.
func startPathRouter(client, hop netnsFD, cfg tun.PathConfig, mtu int) (*pathRouter, error) {
	var a, b *tun.TUN
	err := client.do(func() error {
		var err error
		a, err = tun.Create(tun.Options{Name: pathClientTUN, MTU: mtu, HostAddrs: []netip.Prefix{pathClientAddr},
			Routes: []netip.Prefix{pathServerNet, pathFairNet}})
		if err != nil {
			return err
		}
		return setSysctls("net/ipv4/ip_forward", "1", "net/ipv4/conf/all/rp_filter", "0")
	})
	if err != nil {
		return nil, fmt.Errorf("client side of the path: %w", err)
	}
	err = hop.do(func() error {
		var err error
		if b, err = tun.Create(tun.Options{Name: pathHopTUN, MTU: mtu, HostAddrs: []netip.Prefix{pathHopAddr},
			Routes: []netip.Prefix{pathClientNet}}); err != nil {
			return err
		}
		return setSysctls("net/ipv4/ip_forward", "1", "net/ipv4/conf/all/rp_filter", "0")
	})
	if err != nil {
		if a != nil {
			a.Close()
		}
		if b != nil {
			b.Close()
		}
		return nil, fmt.Errorf("hop side of the path: %w", err)
	}
	p, err := tun.NewPath(a, b, cfg)
	if err != nil {
		a.Close()
		b.Close()
		return nil, err
	}
	return &pathRouter{path: p, cfg: cfg}, nil
}

// Close stops the router and removes its TUN devices.
func (r *pathRouter) Close() error { return r.path.Close() }

// kernelServerNetns creates the namespace of a kernel server behind the hop:
// a veth pair, pathVethHop in hop and pathVethServer in the new namespace,
// whose default route goes back through the hop.
func kernelServerNetns(hop netnsFD) (netnsFD, error) {
	return kernelServerNetnsAt(hop, pathVethHopEnd, pathVethHop, pathVethServer)
}

// kernelServerNetnsAt is kernelServerNetns with the veth's addresses
// hopAddr (in hop, on the veth end named hopEnd) and srvAddr (in the new
// namespace).
func kernelServerNetnsAt(hop netnsFD, hopEnd string, hopAddr, srvAddr netip.Prefix) (netnsFD, error) {
	srv, err := newNetns()
	if err != nil {
		return -1, err
	}
	err = hop.do(func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hopEnd}, PeerName: pathVethSrvEnd,
			PeerNamespace: netlink.NsFd(int(srv))}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("creating the veth pair: %w", err)
		}
		return linkUpWithAddr(hopEnd, hopAddr)
	})
	if err == nil {
		err = srv.do(func() error {
			if err := linkUpWithAddr(pathVethSrvEnd, srvAddr); err != nil {
				return err
			}
			gw := net.IP(hopAddr.Addr().AsSlice())
			return netlink.RouteAdd(&netlink.Route{Gw: gw})
		})
	}
	if err != nil {
		srv.Close()
		return -1, fmt.Errorf("kernel server's namespace: %w", err)
	}
	return srv, nil
}

func linkUpWithAddr(name string, p netip.Prefix) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}); err != nil {
		return fmt.Errorf("adding %v to %s: %w", p, name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	return nil
}

// pathPing sends n ICMP echo requests to dst from this namespace, one at a
// time (each waits up to timeout for its reply), and returns the round
// trips of those answered. It needs a raw socket (root).
func pathPing(dst netip.Addr, n int, timeout time.Duration) ([]time.Duration, error) {
	c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("ping: %w", err)
	}
	defer c.Close()
	ident := uint16(os.Getpid())
	var rtts []time.Duration
	buf := make([]byte, 1500)
	msg := make([]byte, ip.ICMPHeaderLen+56)
	to := &net.IPAddr{IP: dst.AsSlice()}
	for seq := range n {
		m, err := ip.BuildICMPv4Echo(msg, false, ident, uint16(seq), make([]byte, 56))
		if err != nil {
			return nil, err
		}
		sent := time.Now()
		if _, err := c.WriteTo(m, to); err != nil {
			return nil, fmt.Errorf("ping %v: %w", dst, err)
		}
		c.SetReadDeadline(sent.Add(timeout))
		for {
			k, from, err := c.ReadFrom(buf)
			if err != nil {
				break // lost: try the next one
			}
			r, err := ip.ParseICMPv4(buf[:k])
			if err != nil || r.Type() != ip.ICMPv4EchoReply || r.Ident() != ident || r.Seq() != uint16(seq) ||
				from.String() != dst.String() {
				continue
			}
			rtts = append(rtts, time.Since(sent))
			break
		}
	}
	return rtts, nil
}

// netnsDir is where named network namespaces live (ip-netns(8)).
const netnsDir = "/run/netns"

// namedNetns opens the named network namespace name, creating it (as ip
// netns add does: a bind mount of the namespace under /run/netns) if it
// does not exist; created says whether it did.
func namedNetns(name string) (ns netnsFD, created bool, err error) {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return -1, false, fmt.Errorf("namespace name %q: want a plain name, as ip netns takes", name)
	}
	path := filepath.Join(netnsDir, name)
	if _, err := os.Stat(path); err == nil {
		ns, err := openNetns(path)
		return ns, false, err
	}
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return -1, false, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0)
	if err != nil {
		return -1, false, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	f.Close()
	err = onLockedThread(func(int) error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("creating a network namespace: %w", err)
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mounting namespace %s on %s: %w", name, path, err)
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		return err
	})
	if err != nil {
		deleteNamedNetns(name)
		return -1, false, err
	}
	ns, err = openNetns(path)
	if err != nil {
		deleteNamedNetns(name)
		return -1, false, err
	}
	return ns, true, nil
}

// deleteNamedNetns removes a named namespace as ip netns delete does; the
// namespace itself lives on while processes are in it.
func deleteNamedNetns(name string) error {
	path := filepath.Join(netnsDir, name)
	uerr := unix.Unmount(path, unix.MNT_DETACH)
	if errors.Is(uerr, unix.EINVAL) {
		uerr = nil // not mounted
	}
	return errors.Join(uerr, os.Remove(path))
}

// realtimePriority puts every thread of this process under SCHED_FIFO at
// prio (threads made later inherit it from the thread that makes them), so
// the router's readers and senders run as soon as they wake on a busy
// machine. On a loaded 2-core machine this cut the mean lateness of
// released packets from 2-3 ms to about 0.1 ms. The kernel's RT throttling
// (sched_rt_runtime_us) still keeps 5% of every CPU for everyone else.
func realtimePriority(prio int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	param := struct{ prio int32 }{int32(prio)}
	var errs []error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, uintptr(tid), unix.SCHED_FIFO,
			uintptr(unsafe.Pointer(&param))); e != 0 && e != unix.ESRCH {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("SCHED_FIFO priority %d: %w (needs CAP_SYS_NICE and a real-time budget)", prio, errs[0])
	}
	return nil
}
