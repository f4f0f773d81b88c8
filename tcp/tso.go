package tcp

import "time"

// Super-segment sizing with segmentation offload (Config.GSOMaxSize), as
// Linux's tcp_write_xmit sizes its TSO packets whether or not it paces:
// each carries about 1 ms of data at the connection's pacing-rate estimate
// (tcp_tso_autosize), no more than half the congestion window (so that two
// are in flight, tcp_cwnd_test), and one the windows cut short waits for
// the next ACK while that ACK is near and the window is mostly used
// (tcp_tso_should_defer). Without offloads each wire segment is its own
// Segment and none of this applies.

// tsoMinRTT is the smallest RTT sample, the handshake's before any data
// was sent; 0 = none.
func (c *Conn) tsoMinRTT() time.Duration {
	if c.rate != nil {
		return c.rate.minRTT
	}
	return c.rto.SRTT()
}

// tsoAutosize is Linux's tcp_tso_autosize: how many segments of seg bytes a
// super-segment carries at rate bytes per second. It is what the rate
// sends in 2^-10 s (sk_pacing_shift), plus gsoMax >> (minRTT in µs >> 9)
// (tcp_tso_rtt_log: below a few ms of RTT a bigger burst costs no
// latency), at most gsoMax and at least minSegs. Rate 0 (no estimate yet,
// Linux's unbounded rate) gives gsoMax.
func tsoAutosize(rate uint64, minRTT time.Duration, gsoMax, seg, minSegs uint32) uint32 {
	bytes := uint64(gsoMax)
	if rate > 0 {
		bytes = rate >> 10
		if minRTT > 0 {
			if r := uint64(minRTT.Microseconds()) >> 9; r < 32 {
				bytes += uint64(gsoMax) >> r
			}
		}
		bytes = min(bytes, uint64(gsoMax))
	}
	return max(uint32(bytes)/max(seg, 1), minSegs)
}

// tsoFullRTT is the minimum RTT below which tsoAutosize is gso whatever the
// rate (2^tcp_tso_rtt_log µs).
const tsoFullRTT = 512 * time.Microsecond

// tsoSegs is the size of the next super-segment in segments of seg bytes
// before the windows cut it, at most GSOMaxSize: tsoAutosize at the
// connection's rate estimate; a paced connection's is its pacing quantum,
// 1 ms at its pacing rate (which paceCatchUp and the pacing tests assume,
// and with which BBR's goodput at loss was measured).
func (c *Conn) tsoSegs(seg uint32) uint32 {
	gso := uint32(c.cfg.GSOMaxSize)
	seg = max(seg, 1)
	var segs uint32
	if rate := c.pacingRate(); rate > 0 {
		segs = max(ccSaturate(rate/1000/uint64(seg)), uint32(c.cfg.MinTSOSegs))
	} else if mr := c.tsoMinRTT(); mr > 0 && mr < tsoFullRTT {
		segs = gso / seg // tsoAutosize adds all of gso: no need for the rate
	} else {
		segs = tsoAutosize(c.defaultPacingRate(), mr, gso, seg, uint32(c.cfg.MinTSOSegs))
	}
	return max(min(segs, gso/seg), 1)
}

// tsoChunk is the most payload the next super-segment carries: full
// (tsoSegs*seg), and at most half the congestion window in segments (at
// least one), so that a window goes out as two super-segments at least
// (Linux tcp_cwnd_test: "ensure we have at least 2 GSO packets in flight").
func (c *Conn) tsoChunk(full, seg uint32) uint32 {
	half := max(c.cc.CWnd()/uint32(max(c.sndMSS, 1))/2, 1)
	return min(full/seg, half) * seg
}

// tsoDeferBurst is how recent the previous send must be for a short
// super-segment to wait (Linux tcp_tso_should_defer's 1 ms): after a
// pause the data goes at once rather than as a later burst.
const tsoDeferBurst = time.Millisecond

// tsoDefer reports whether new data that the windows cut to usable bytes
// (winAvail by the peer's window) of the avail unsent, full being a whole
// super-segment (tsoSegs*seg, computed once per send), waits for the next
// ACK to grow its super-segment (Linux tcp_tso_should_defer). It waits
// only when all of these hold: outside recovery; more than one segment is
// unsent; the previous send was less than tsoDeferBurst ago; the windows allow
// less than a full super-segment (tsoSegs) and less than
// 1/TSOWinDivisor of min(cwnd, SND.WND) (3 segments with a negative
// divisor); the oldest unacknowledged segment left at least SRTT/2 ago, so
// its ACK is near; and the windows are the limit or the data may still
// grow (no FIN queued). Something is in flight then, so an ACK or a timer
// always comes to send it.
func (c *Conn) tsoDefer(now Time, avail, usable, winAvail, full, seg uint32) bool {
	r := c.rate
	if r == nil || r.n == 0 || c.inRecovery || c.sackRecovery || r.rack.tlpSending || c.forceSend {
		return false
	}
	// (At exactly tsoDeferBurst too: Linux compares nanosecond clocks, and
	// an ACK a script sends "1 ms later" reaches it a little later.)
	if avail <= seg || now.Sub(c.lastSend) >= tsoDeferBurst {
		return false
	}
	if usable >= full {
		return false
	}
	cwnd := c.cc.CWnd()
	if d := c.cfg.TSOWinDivisor; d > 0 {
		if usable >= min(c.sndWnd, cwnd)/uint32(d) {
			return false
		}
	} else if usable > 3*uint32(c.sndMSS) {
		return false
	}
	if now.Sub(r.at(0).sentTime) < c.rto.SRTT()/2 {
		return false // the next ACK is more than SRTT/2 away
	}
	if congWin := c.cwndAvail(); congWin < winAvail {
		if congWin <= avail {
			return true // cwnd-limited
		}
	} else if winAvail <= avail {
		return true // limited by the peer's window
	}
	return !c.wrClosed // application-limited: more data may join it, unless a FIN ends it
}
