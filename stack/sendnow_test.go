package stack

import (
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeRecorder records, for each write to a nullLink, whether it ran on
// the link's writer goroutine or in an application's Write.
type writeRecorder struct {
	mu      sync.Mutex
	byWrite int // packets written inside (*Conn).Write
	byOther int // packets written elsewhere (the writer goroutine)
}

func (r *writeRecorder) hook(n int) {
	buf := make([]byte, 16<<10)
	st := string(buf[:runtime.Stack(buf, false)])
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.Contains(st, "stack.(*Conn).Write(") && !strings.Contains(st, "writeLoop") {
		r.byWrite += n
	} else {
		r.byOther += n
	}
}

func (r *writeRecorder) counts() (byWrite, byOther int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byWrite, r.byOther
}

// TestWriteTransmitsOnCaller: a small Write on an established connection
// over a link whose writes never block leaves on the caller's goroutine,
// before Write returns (run to completion: no hand-off to the writer).
func TestWriteTransmitsOnCaller(t *testing.T) {
	bc := newBenchConn(t)
	bc.c.SetNoDelay(true)
	var rec writeRecorder
	f := rec.hook
	bc.nl.onWrite.Store(&f)
	before := bc.nl.written.Load()
	n, err := bc.c.Write(make([]byte, 64))
	require.NoError(t, err)
	require.Equal(t, 64, n)
	assert.Equal(t, before+1, bc.nl.written.Load(), "the segment was written before Write returned")
	byWrite, byOther := rec.counts()
	assert.Equal(t, 1, byWrite, "written by Write itself")
	assert.Equal(t, 0, byOther, "not by the writer goroutine")
}

// TestBulkWriteKeepsWriterBatches: a Write that queues more than a few
// packets (bulk) leaves them to the writer goroutine, whose batches bulk
// throughput relies on.
func TestBulkWriteKeepsWriterBatches(t *testing.T) {
	bc := newBenchConn(t)
	var rec writeRecorder
	f := rec.hook
	bc.nl.onWrite.Store(&f)
	before := bc.nl.written.Load()
	n, err := bc.c.Write(make([]byte, 10*1460)) // the initial window: 10 segments at once
	require.NoError(t, err)
	require.Equal(t, 10*1460, n)
	require.Eventually(t, func() bool { return bc.nl.written.Load() >= before+10 }, 5e9, 1e5)
	byWrite, byOther := rec.counts()
	assert.Equal(t, 0, byWrite, "bulk is not written by Write")
	assert.Equal(t, 10, byOther, "the writer wrote the window")
}
