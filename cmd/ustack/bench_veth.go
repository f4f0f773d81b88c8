package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"

	"github.com/vishvananda/netlink"
)

// The kernel-over-veth server of `ustack bench`: the kernel's TCP in a
// network namespace of its own, one veth pair away from the client's (the
// target's private namespace):
//
//	target ns (client)                server ns
//	benchv0 198.18.0.1/24 ══ veth ══ benchv1 198.18.0.2/24  kernel server
//
// The veth has the TUN's MTU and the offloads the kernel gives a veth
// (TSO, checksum offload): the fair ceiling for a userspace stack behind a
// TUN of that MTU, where loopback (64 KiB MTU, no device) is a loose one.
// Both namespaces belong to the bench: the server's goes with its process
// and descriptor, and the pair with it (removeKernelVeth deletes it first,
// so the next server can reuse the names).

// Addresses and device names of the kernel-over-veth server: the same
// addresses as a TUN server's (benchHostAddrs, benchAddrs), so the workloads
// and the idle connections' extra sources work unchanged.
var (
	benchVethClient = benchHostAddrs[0]
	benchVethServer = netip.PrefixFrom(benchAddrs[0], benchHostAddrs[0].Bits())
)

const (
	benchVethClientEnd = "benchv0"
	benchVethServerEnd = "benchv1"
)

// kernelVethNetns creates the server's namespace and the veth pair between
// it and this one, both ends up with their addresses and an MTU of mtu.
func kernelVethNetns(mtu int) (netnsFD, error) {
	srv, err := newNetns()
	if err != nil {
		return -1, err
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: benchVethClientEnd, MTU: mtu}, PeerName: benchVethServerEnd,
		PeerNamespace: netlink.NsFd(int(srv)), PeerMTU: uint32(mtu)}
	err = netlink.LinkAdd(veth)
	if err != nil {
		err = fmt.Errorf("creating the veth pair: %w", err)
	} else if err = linkUpWithAddr(benchVethClientEnd, benchVethClient); err == nil {
		err = srv.do(func() error { return linkUpWithAddr(benchVethServerEnd, benchVethServer) })
	}
	if err != nil {
		removeKernelVeth(srv)
		return -1, fmt.Errorf("kernel-veth server's namespace: %w", err)
	}
	return srv, nil
}

// removeKernelVeth deletes the veth pair (deleting one end deletes both)
// and lets the server's namespace go.
func removeKernelVeth(srv netnsFD) error {
	var err error
	if l, lerr := netlink.LinkByName(benchVethClientEnd); lerr == nil {
		err = netlink.LinkDel(l)
	}
	return errors.Join(err, srv.Close())
}

// startKernelVethServer starts the kernel server of args in a namespace of
// its own behind a veth pair.
func startKernelVethServer(exe string, args []string, mtu int) (*benchServer, error) {
	ns, err := kernelVethNetns(mtu)
	if err != nil {
		return nil, err
	}
	s, err := startBenchServerWith(exe, args, func(cmd *exec.Cmd) error { return startInNetns(ns, cmd) })
	if err != nil {
		removeKernelVeth(ns)
		return nil, err
	}
	s.hostDev = benchVethClientEnd
	s.cleanup = func() error { return removeKernelVeth(ns) }
	return s, nil
}
