package tcp

import "strings"

// Events are notifications a Conn accumulates for the stack; TakeEvents
// returns and clears them.
type Events uint16

// The events.
const (
	// EventEstablished: the handshake completed (ESTABLISHED reached).
	EventEstablished Events = 1 << iota
	// EventReadable: new data (or EOF, or an error) can be read.
	EventReadable
	// EventWritable: send-buffer space was freed.
	EventWritable
	// EventEOF: the peer's FIN arrived; Read returns io.EOF once data is drained.
	EventEOF
	// EventReset: the connection was reset by the peer (ECONNRESET).
	EventReset
	// EventRefused: the active open was refused (ECONNREFUSED).
	EventRefused
	// EventTimedOut: a retransmission, keepalive, user or handshake timeout
	// expired (ETIMEDOUT).
	EventTimedOut
	// EventClosed: the connection reached CLOSED.
	EventClosed
	// EventUndo: a spurious fast recovery or RTO was undone (LastUndo
	// tells which, and how it was found).
	EventUndo
)

var eventNames = [...]string{"established", "readable", "writable", "eof", "reset", "refused", "timedout", "closed", "undo"}

// Has reports whether all bits of f are set in e.
func (e Events) Has(f Events) bool { return e&f == f }

// String lists the set events, e.g. "established|writable".
func (e Events) String() string {
	if e == 0 {
		return "none"
	}
	var b strings.Builder
	for i, n := range eventNames {
		if e&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}
