package drill

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUstackFreshPeerPort: a second passive open while the first accepted
// connection is still open comes from a new peer port, as in packetdrill,
// so the stack answers it with a SYN-ACK of its own instead of treating it
// as a SYN on the first connection (which gets a challenge ACK). The
// corpus's fastopen/server/pure-syn-data depends on it.
func TestUstackFreshPeerPort(t *testing.T) {
	src := `
0.000 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 999000:999000(0) win 32792 <mss 1460,nop,wscale 6>
   +0 > S. 0:0(0) ack 999001 <mss 1460,nop,wscale 8>
   +0 < . 1:1(0) ack 1 win 100
   +0 accept(3, ..., ...) = 4
   +0 close(3) = 0
   +0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 999000:999000(0) win 32792 <mss 1460,nop,wscale 6>
   +0 > S. 0:0(0) ack 999001 <mss 1460,nop,wscale 8>
   +0 < . 1:1(0) ack 1 win 100
   +0 accept(3, ..., ...) = 5
   +0 write(5, ..., 10) = 10
   +0 > P. 1:11(10) ack 1
`
	s, err := Parse("fresh-port.pkt", src)
	require.NoError(t, err)
	r := Run(s, "ustack", Strict, nil)
	var b strings.Builder
	WriteResult(&b, r, true)
	require.Equal(t, Pass, r.Status, b.String())
}
