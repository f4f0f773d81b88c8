package tcp

import "time"

// Linux's tcp_chrono: how long the connection has been busy (data queued
// or in flight, tcpi_busy_time) and, of that, how long the peer's window
// held the next segment back (tcpi_rwnd_limited). The state lives in
// rateState: only a connection with data to send keeps it.

const (
	chronoNone uint8 = iota
	chronoBusy
	chronoRwnd
)

// chrono is one connection's busy and window-limited times.
type chrono struct {
	kind  uint8 // the interval running since start
	start Time
	// busy and rwnd add up the closed intervals: busy of every kind,
	// rwnd of the window-limited ones.
	busy, rwnd time.Duration
}

// set ends the running interval at now and starts one of kind.
func (ch *chrono) set(now Time, kind uint8) {
	if kind == ch.kind {
		return
	}
	if ch.kind != chronoNone {
		d := now.Sub(ch.start)
		ch.busy += d
		if ch.kind == chronoRwnd {
			ch.rwnd += d
		}
	}
	ch.kind, ch.start = kind, now
}

// times returns the busy and window-limited totals as of now.
func (ch *chrono) times(now Time) (busy, rwnd time.Duration) {
	busy, rwnd = ch.busy, ch.rwnd
	if ch.kind != chronoNone && now.After(ch.start) {
		d := now.Sub(ch.start)
		busy += d
		if ch.kind == chronoRwnd {
			rwnd += d
		}
	}
	return busy, rwnd
}

// chronoOutput updates the chrono after Output has sent what it could:
// idle once nothing is queued or in flight, window-limited while the
// congestion window would let the next segment go but the peer's window
// does not (tcp_write_xmit's tcp_snd_wnd_test), busy otherwise.
func (c *Conn) chronoOutput(now Time) {
	if c.sb.Len() == 0 {
		if c.rate != nil {
			c.rate.chrono.set(now, chronoNone)
		}
		return
	}
	kind := chronoBusy
	if u := c.notSent(); u > 0 {
		var win uint32
		if edge := c.sndUna + Seq(c.sndWnd); edge.GreaterThan(c.sndNxt) {
			win = c.sndNxt.Size(edge)
		}
		if win < min(u, c.segPayloadMax()) && c.cwndAvail() > win {
			kind = chronoRwnd
		}
	}
	c.rateState().chrono.set(now, kind)
}
