// Package integration holds the tests that need something outside ustack as
// a peer or a judge: the Linux kernel behind a TUN device in a private network
// namespace, or gVisor's netstack as an in-process differential oracle.
//
// The oracle half (oracle_*.go) is ordinary, importable code so that
// `ustack drill` can reuse it: a DUT interface with two implementations —
// GVisorDUT (a gVisor stack on a channel link endpoint with a manual clock)
// and UstackDUT (a bare tcp.Conn, no stack) — and a scripted Peer that plays
// the remote end of one TCP connection against either of them in virtual
// time, using sequence numbers relative to each side's ISS so that the two
// DUTs' traces can be compared segment by segment.
package integration
