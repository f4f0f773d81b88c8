package tun

import (
	"errors"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPipeRoundTrip(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	var _ Link = a
	out := [][]byte{numbered(1), numbered(2), numbered(3)}
	for i := range out {
		out[i] = append(make([]byte, Headroom), out[i]...)
	}
	n, err := a.Write(out, Headroom)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	assert.Equal(t, 3, b.Queued())
	assert.Equal(t, 0, a.Queued())

	bufs, sizes := newBufs(2, 1600), make([]int, 2)
	n, err = b.Read(bufs, sizes, 7)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	assert.Equal(t, []int{100, 100}, sizes)
	assert.Equal(t, numbered(1), bufs[0][7:107])
	assert.Equal(t, numbered(2), bufs[1][7:107])
	n, err = b.Read(bufs, sizes, 0)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	assert.Equal(t, numbered(3), bufs[0][:100])

	// The other direction.
	n, err = b.Write([][]byte{numbered(9)}, 0)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = a.Read(bufs, sizes, 0)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, 9, numberOf(bufs[0]))
	assert.Equal(t, 1500, a.MTU())
	assert.Equal(t, MaxPacketSize, a.GSOMaxSize())
}

func TestPipeWriteErrors(t *testing.T) {
	a, b := NewPipe(1000)
	defer a.Close()
	big := make([]byte, 1001)
	big[0] = 0x45
	n, err := a.Write([][]byte{numbered(1), big, numbered(2)}, 0)
	assert.ErrorIs(t, err, ErrPacketTooBig)
	assert.Equal(t, 1, n, "packets before the bad one are sent")
	assert.Equal(t, 1, b.Queued())

	g := TCPGSO(false, 20, 0)
	g.CsumOffset = 2000
	n, err = a.WriteGSO([][]byte{numbered(3)}, []GSO{g}, 0)
	assert.ErrorIs(t, err, ErrBadGSO)
	assert.Equal(t, 0, n)
}

func TestPipeReadShortBuffer(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	_, err := a.Write([][]byte{numbered(1), numbered(2), numbered(3)}, 0)
	require.NoError(t, err)
	// The first buffer is too small for the first packet: it is dropped
	// with an error rather than wedging the pipe.
	n, err := b.Read([][]byte{make([]byte, 50), make([]byte, 200)}, make([]int, 2), 0)
	assert.ErrorIs(t, err, ErrShortBuffer)
	assert.Equal(t, 0, n)
	// The second packet fits, the third does not: it waits for next time.
	bufs := [][]byte{make([]byte, 200), make([]byte, 50)}
	sizes := make([]int, 2)
	n, err = b.Read(bufs, sizes, 0)
	assert.NoError(t, err)
	require.Equal(t, 1, n)
	assert.Equal(t, 2, numberOf(bufs[0]))
	n, err = b.Read(bufs, sizes, 0)
	assert.NoError(t, err)
	require.Equal(t, 1, n)
	assert.Equal(t, 3, numberOf(bufs[0]))
}

func TestPipeBackpressure(t *testing.T) {
	a, b := NewPipeQueue(1500, 2)
	defer a.Close()
	done := make(chan int)
	go func() {
		n, err := a.Write([][]byte{numbered(0), numbered(1), numbered(2), numbered(3)}, 0)
		assert.NoError(t, err)
		done <- n
	}()
	for b.Queued() < 2 {
		runtime.Gosched()
	}
	bufs, sizes := newBufs(1, 1500), make([]int, 1)
	var got []int
	for len(got) < 4 {
		n, err := b.Read(bufs, sizes, 0)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		got = append(got, numberOf(bufs[0]))
		assert.LessOrEqual(t, b.Queued(), 2, "queue bound")
	}
	assert.Equal(t, 4, <-done)
	assert.Equal(t, []int{0, 1, 2, 3}, got, "nothing dropped, order kept")
}

func TestPipeCloseUnblocks(t *testing.T) {
	a, b := NewPipeQueue(1500, 1)
	_, err := a.Write([][]byte{numbered(0)}, 0)
	require.NoError(t, err)
	writeErr, readErr := make(chan error), make(chan error)
	go func() {
		_, err := a.Write([][]byte{numbered(1)}, 0) // blocks: b's queue is full
		writeErr <- err
	}()
	go func() {
		_, err := a.Read(newBufs(1, 1500), make([]int, 1), 0) // blocks: nothing for a
		readErr <- err
	}()
	require.NoError(t, b.Close())
	assert.ErrorIs(t, <-writeErr, ErrClosed)
	assert.ErrorIs(t, <-readErr, ErrClosed)
	_, err = b.Read(newBufs(1, 1500), make([]int, 1), 0)
	assert.True(t, errors.Is(err, ErrClosed))
	_, err = b.Write([][]byte{numbered(2)}, 0)
	assert.ErrorIs(t, err, ErrClosed)
	assert.NoError(t, a.Close(), "closing twice is fine")
}

func TestPipeGSO(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	payload := patterned(5000, 1)
	super := tcpPkt{src: stackV4, dst: hostV4, sport: 1, dport: 2, seq: 100, flags: flagACK | flagPSH, payload: payload}.build(Headroom)
	binary := super[Headroom:]
	g := TCPGSO(false, 20, 1460)

	// ReadGSO gets the super-packet whole, metadata included.
	_, err := a.WriteGSO([][]byte{super}, []GSO{g}, Headroom)
	require.NoError(t, err)
	bufs, sizes, gso := newBufs(8, MaxPacketSize), make([]int, 8), make([]GSO, 8)
	n, err := b.ReadGSO(bufs, sizes, gso, 0)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	assert.Equal(t, g, gso[0])
	assert.Equal(t, binary, bufs[0][:sizes[0]])

	// Read gets it segmented, as a NIC would deliver it.
	_, err = a.WriteGSO([][]byte{super}, []GSO{g}, Headroom)
	require.NoError(t, err)
	n, err = b.Read(bufs, sizes, 0)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	assert.Equal(t, []int{1500, 1500, 1500, 660}, sizes[:4])
	for i := range n {
		assert.True(t, tcpChecksumOK(bufs[i][:sizes[i]]))
	}

	// Segments that do not fit the rest of the batch wait for the next Read.
	_, err = a.WriteGSO([][]byte{append(make([]byte, Headroom), numbered(7)...), super}, []GSO{{}, g}, Headroom)
	require.NoError(t, err)
	n, err = b.Read(bufs[:3], sizes, 0)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, err = b.Read(bufs[:4], sizes, 0)
	require.NoError(t, err)
	assert.Equal(t, 4, n)
}

func TestPipeZeroAllocs(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	out := [][]byte{numbered(1), numbered(2)}
	bufs, sizes := newBufs(2, 1500), make([]int, 2)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := a.Write(out, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Read(bufs, sizes, 0); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

func BenchmarkPipe(b *testing.B) {
	x, y := NewPipe(1500)
	defer x.Close()
	out := newBufs(32, 1500)
	for i := range out {
		out[i][0] = 0x45
	}
	bufs, sizes := newBufs(32, 1500), make([]int, 32)
	b.SetBytes(32 * 1500)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x.Write(out, 0); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < 32; {
			n, err := y.Read(bufs, sizes, 0)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
}
