package main

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSSUDP: ss -u lists connected UDP sockets, -ua the unconnected ones
// too, -ul only those, with their receive queues; the UDP counters reach
// /metrics; the UDP echo service answers.
func TestSSUDP(t *testing.T) {
	srv, cli := stackPair(t)
	path := filepath.Join(t.TempDir(), "ut0.sock")
	stop, err := startAdmin(srv, path, discardLogger(), adminOptions{})
	require.NoError(t, err)
	defer stop()

	echo, err := srv.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 7))
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); serveUDPEcho(echo, discardLogger()) }()
	held, err := srv.ListenUDP(netip.MustParseAddrPort("198.18.0.2:5353"))
	require.NoError(t, err)
	dialed, err := srv.DialUDP(netip.MustParseAddrPort("198.18.0.2:4000"), netip.MustParseAddrPort("198.18.0.1:53"))
	require.NoError(t, err)
	defer dialed.Close()

	c, err := cli.DialUDP(netip.AddrPort{}, netip.MustParseAddrPort("198.18.0.2:7"))
	require.NoError(t, err)
	_, err = c.Write([]byte("hello"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 10)
	n, err := c.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(buf[:n]))
	// 100 bytes wait on the held socket.
	h, err := cli.DialUDP(netip.AddrPort{}, netip.MustParseAddrPort("198.18.0.2:5353"))
	require.NoError(t, err)
	_, err = h.Write(make([]byte, 100))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return srv.Stats().UDPInDatagrams.Load() == 2 }, 5*time.Second, 5*time.Millisecond)

	assert.Equal(t, "State Recv-Q Local Address:Port Peer Address:Port\n"+
		"ESTAB      0 198.18.0.2:4000    198.18.0.1:53\n", ssRun(t, "-u", "--admin", path))
	assert.Equal(t, "State  Recv-Q Local Address:Port Peer Address:Port\n"+
		"UNCONN      0 *:7                *:*\n"+
		"UNCONN    356 198.18.0.2:5353    0.0.0.0:*\n", ssRun(t, "-u", "-l", "--admin", path))
	all := ssRun(t, "-u", "-a", "--admin", path)
	assert.Equal(t, 4, strings.Count(all, "\n"), all)
	assert.Equal(t, "State  Recv-Q Local Address:Port Peer Address:Port\n"+
		"UNCONN    356 198.18.0.2:5353    0.0.0.0:*\n", ssRun(t, "-u", "-a", "--admin", path, "sport", "=", ":5353"))
	var js []adminUDP
	require.NoError(t, json.Unmarshal([]byte(ssRun(t, "-u", "--json", "--admin", path, "state", "unconn")), &js))
	require.Len(t, js, 2)
	assert.Equal(t, 1, js[1].Datagrams)

	h2 := newAdminHandler(srv, discardLogger(), nil)
	m := scrape(t, h2)
	assert.Equal(t, 2.0, counter(t, m, "ustack_udp_in_datagrams_total"))
	assert.Equal(t, 1.0, counter(t, m, "ustack_udp_out_datagrams_total"))

	require.NoError(t, held.Close())
	require.NoError(t, echo.Close())
	<-done
}
