package stack

import (
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tun"
)

// A Read that waits lends its buffer to the connection (tcp.DirectRead):
// bytes must arrive exactly, in order, whatever the read sizes, and also
// when Reads keep giving up at their deadline while data is arriving.
func TestDirectReadExactBytes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline time.Duration // per Read; 0: none
	}{
		{"odd-sizes", 0},
		{"odd-sizes-with-deadlines", 50 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 16 << 20
			p := newPair(t, nil)
			cli, srv := connPair(t, p)
			sizes := []int{1, 7, 1000, 4093, 65537, 200001, 3}
			type result struct {
				n        int64
				sum      [32]byte
				err      error
				timeouts int
			}
			res := make(chan result, 1)
			go func() {
				defer srv.Close()
				h := sha256.New()
				buf := make([]byte, 200001)
				var r result
				for i := 0; ; i++ {
					if tc.deadline > 0 {
						srv.SetReadDeadline(time.Now().Add(tc.deadline))
					}
					k, err := srv.Read(buf[:sizes[i%len(sizes)]])
					h.Write(buf[:k])
					r.n += int64(k)
					if errors.Is(err, os.ErrDeadlineExceeded) {
						r.timeouts++
						continue
					}
					if err == io.EOF {
						break
					}
					if err != nil {
						r.err = err
						break
					}
				}
				copy(r.sum[:], h.Sum(nil))
				res <- r
			}()
			k, err := io.Copy(cli, &patternReader{n: n})
			require.NoError(t, err)
			require.EqualValues(t, n, k)
			require.NoError(t, cli.CloseWrite())
			r := <-res
			require.NoError(t, r.err)
			require.EqualValues(t, n, r.n)
			require.Equal(t, patternSum(n), r.sum)
			direct := p.b.Stats().TCPRcvDirectBytes.Load()
			require.NotZero(t, direct, "no byte went straight into a waiting Read's buffer")
			require.LessOrEqual(t, direct, uint64(n))
			t.Logf("%d of %d bytes delivered directly; %d Reads timed out", direct, n, r.timeouts)
		})
	}
}

// Only a TUN's writes never block; over anything else (a pipe, also under a
// wrapper) the reader must leave the writing to the writer goroutine, or
// two readers blocked writing to each other would deadlock.
func TestInlineWritesOnlyOnNonBlockingLinks(t *testing.T) {
	la, lb := tun.NewPipe(1500)
	defer la.Close()
	require.False(t, writesNeverBlock(la))
	require.False(t, writesNeverBlock(tun.NewImpaired(lb, tun.Impairment{}, nil)))
	pc, err := tun.NewPcap(la, io.Discard, tun.PcapOptions{})
	require.NoError(t, err)
	require.False(t, writesNeverBlock(pc))
	require.True(t, writesNeverBlock(&tun.TUN{}))
}
