package tcp

import (
	"encoding/binary"
	"testing"
	"time"
)

// legalNext is the RFC 9293 state diagram (Figure 5) plus CLOSED from every
// state (RST, abort, timeouts). One Input may take several steps (a SYN-ACK
// carrying a FIN), so transitions are checked for reachability.
var legalNext = map[State][]State{
	StateSynSent:     {StateSynReceived, StateEstablished, StateClosed},
	StateSynReceived: {StateEstablished, StateFinWait1, StateCloseWait, StateClosed},
	StateEstablished: {StateFinWait1, StateCloseWait, StateClosed},
	StateFinWait1:    {StateFinWait2, StateClosing, StateTimeWait, StateClosed},
	StateFinWait2:    {StateTimeWait, StateClosed},
	StateCloseWait:   {StateLastAck, StateClosed},
	StateClosing:     {StateTimeWait, StateClosed},
	StateLastAck:     {StateClosed},
	StateTimeWait:    {StateClosed},
	StateClosed:      {},
}

func reachable(from, to State) bool {
	if from == to {
		return true
	}
	seen := map[State]bool{from: true}
	stack := []State{from}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, n := range legalNext[s] {
			if n == to {
				return true
			}
			if !seen[n] {
				seen[n] = true
				stack = append(stack, n)
			}
		}
	}
	return false
}

func checkInvariants(t *testing.T, c *Conn, prev State) {
	t.Helper()
	if !reachable(prev, c.state) {
		t.Fatalf("illegal transition %s -> %s", prev, c.state)
	}
	if c.sndNxt.GreaterThan(c.sndMax) || c.sndUna.GreaterThan(c.sndNxt) {
		t.Fatalf("SND.UNA %d <= SND.NXT %d <= SND.MAX %d violated", c.sndUna, c.sndNxt, c.sndMax)
	}
	if c.sb.Len() > c.sb.Cap() || c.rb.Len() > c.rb.Cap() || c.oooBytes() > c.cfg.OOOLimit {
		t.Fatalf("buffer bounds: send %d/%d recv %d/%d ooo %d/%d", c.sb.Len(), c.sb.Cap(), c.rb.Len(), c.rb.Cap(), c.oooBytes(), c.cfg.OOOLimit)
	}
	if c.sndUna.Size(c.sndMax) > uint32(c.sb.Len())+2 {
		t.Fatalf("in flight %d exceeds send buffer %d", c.sndUna.Size(c.sndMax), c.sb.Len())
	}
	if c.state == StateClosed {
		if _, ok := c.NextDeadline(); ok {
			t.Fatalf("CLOSED with a timer armed")
		}
	}
}

// invEmitter checks every emitted segment.
type invEmitter struct {
	t *testing.T
	c *Conn
}

func (e invEmitter) Emit(s *Segment) {
	if len(s.Payload) > 65535 {
		e.t.Fatalf("payload %d > 64 KiB", len(s.Payload))
	}
	if s.GSOSize == 0 && len(s.Payload) > int(e.c.sndMSS) {
		e.t.Fatalf("payload %d > MSS %d without GSO", len(s.Payload), e.c.sndMSS)
	}
	if s.Flags&FlagRST == 0 && s.Flags&FlagSYN == 0 && s.Flags&FlagACK == 0 {
		e.t.Fatalf("non-RST segment without ACK: %s", fmtSeg(s))
	}
}

// FuzzConn drives a Conn, started in a state chosen by the first byte, with
// arbitrary segments, application calls and time steps, checking invariants
// after every step.
func FuzzConn(f *testing.F) {
	f.Add([]byte{2, 0, 0x12, 0, 1, 0, 0, 0, 0, 5})
	f.Add([]byte{4, 1, 0x10, 0, 0, 0, 0, 0, 0, 50, 3, 200, 2, 6, 5, 4})
	f.Add([]byte{5, 0, 0x04, 0, 0, 0, 0, 0, 1, 0, 0, 0x02, 1, 0, 0, 0, 0, 0})
	f.Add([]byte{3, 0, 0x11, 0, 0, 0, 0, 0, 1, 10, 7, 1, 7, 2, 9})
	states := []State{StateSynSent, StateSynReceived, StateEstablished, StateFinWait1, StateFinWait2,
		StateCloseWait, StateClosing, StateLastAck, StateTimeWait, StateClosed}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		st := states[int(in[0])%len(states)]
		h := inStateCfg(t, st, fuzzConfig(in[0]))
		c := h.c
		em := invEmitter{t, c}
		payload := make([]byte, 80000)
		buf := make([]byte, 5000)
		p := in[1:]
		for len(p) > 0 {
			op := p[0] % 10
			p = p[1:]
			prev := c.state
			switch op {
			case 0, 1, 2, 3: // a segment: flags, seq off, ack off, window, len
				if len(p) < 8 {
					return
				}
				s := Segment{
					Flags:  Flags(p[0]),
					Seq:    c.rcvNxt + Seq(int32(int16(binary.BigEndian.Uint16(p[1:])))),
					Ack:    c.sndUna + Seq(int32(int16(binary.BigEndian.Uint16(p[3:])))),
					Window: uint16(p[5]) << 8,
				}
				n := int(binary.BigEndian.Uint16(p[6:])) % 70000
				s.Payload = payload[:n]
				if p[0]&0x40 != 0 {
					s.Options.HasTimestamp = true
					s.Options.TSVal = uint32(p[1]) << 24
				}
				if p[0]&0x80 != 0 && len(p) > 8 {
					s.Options.NumSACK = 1
					s.Options.SACKBlocks[0] = SACKBlock{Start: c.sndUna + Seq(p[8])*100, End: c.sndUna + Seq(p[8])*100 + 1000}
				}
				p = p[8:]
				c.Input(h.now, &s)
			case 4:
				if len(p) < 1 {
					return
				}
				c.Write(payload[:int(p[0])*300])
				p = p[1:]
			case 5:
				c.Read(buf)
			case 6:
				if len(p) < 1 {
					return
				}
				h.now += Time(time.Duration(p[0]) * 10 * time.Millisecond)
				p = p[1:]
			case 7:
				if d, ok := c.NextDeadline(); ok {
					h.now = max(h.now, d)
				}
			case 8:
				switch {
				case len(p) > 0 && p[0]%3 == 0:
					c.Close()
				case len(p) > 0 && p[0]%3 == 1:
					c.CloseWrite()
				default:
					c.Abort()
				}
				if len(p) > 0 {
					p = p[1:]
				}
			case 9:
				c.SetRecvBufferSize(8192)
				c.SetNoDelay(true)
			}
			checkInvariants(t, c, prev)
			prev = c.state
			c.Output(h.now, em)
			checkInvariants(t, c, prev)
		}
	})
}

func fuzzConfig(b byte) Config {
	cfg := plainConfig()
	if b&0x10 != 0 {
		cfg.DisableSACK = false
		cfg.DisableTimestamps = false
	}
	if b&0x20 != 0 {
		cfg.GSOMaxSize = 65535
	}
	cfg.KeepAlive = b&0x40 != 0
	return cfg
}
