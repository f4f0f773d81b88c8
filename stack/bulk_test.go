package stack

import (
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
)

// patternReader yields n bytes where byte i is i mod 251.
type patternReader struct{ off, n int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n-r.off {
		p = p[:r.n-r.off]
	}
	for i := range p {
		p[i] = byte((r.off + int64(i)) % 251)
	}
	r.off += int64(len(p))
	return len(p), nil
}

func patternSum(n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, &patternReader{n: n})
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func TestBulkTransferSHA256(t *testing.T) {
	for _, tc := range []struct {
		name, network, addr string
	}{
		{"ipv4", "tcp4", "198.18.0.2:9"},
		{"ipv6", "tcp6", "[2001:2::2]:9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 32 << 20
			p := newPair(t, nil)
			ln, err := p.b.Listen(tc.network, ":9")
			require.NoError(t, err)
			type result struct {
				n    int64
				sum  [32]byte
				err  error
				info tcp.Info
			}
			res := make(chan result, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					res <- result{err: err}
					return
				}
				defer c.Close()
				h := sha256.New()
				k, err := io.Copy(h, c)
				var s [32]byte
				copy(s[:], h.Sum(nil))
				res <- result{k, s, err, c.(*Conn).Info()}
			}()
			c, err := p.a.Dial("tcp", tc.addr)
			require.NoError(t, err)
			start := time.Now()
			k, err := io.Copy(c, &patternReader{n: n})
			require.NoError(t, err)
			require.EqualValues(t, n, k)
			require.NoError(t, c.Close())
			r := <-res
			el := time.Since(start)
			require.NoError(t, r.err)
			require.EqualValues(t, n, r.n)
			require.Equal(t, patternSum(n), r.sum)
			// The pipe neither loses nor reorders: no segment may be
			// discarded as old (PAWS) because a sender's time went back.
			require.Zero(t, r.info.PAWSDrops)
			t.Logf("%d MiB in %v: %.0f MB/s", n>>20, el, float64(n)/el.Seconds()/1e6)
			ln.Close()
		})
	}
}
