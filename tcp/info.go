package tcp

import "time"

// TimerInfo is one pending timer: whether it is armed and the time left
// until it fires.
type TimerInfo struct {
	Armed bool
	Left  time.Duration
}

// Info is a tcp_info-grade snapshot of a connection.
type Info struct {
	State    State
	CC       string // congestion control algorithm
	RTT      time.Duration
	RTTVar   time.Duration
	RTO      time.Duration
	CWnd     uint32 // bytes
	SSThresh uint32 // bytes
	MSS      uint16 // Eff.snd.MSS
	RcvMSS   uint16
	// AdvMSS is the MSS we advertise (Config.MSS, TCP_MAXSEG): Linux's
	// tcpi_advmss.
	AdvMSS uint16
	// LastDataRecv is the time since in-order data last arrived, or since
	// the connection was established if none has (tcpi_last_data_recv,
	// in milliseconds).
	LastDataRecv time.Duration
	// BusyTime is how long data has been queued or in flight, RwndLimited
	// how much of it the peer's window held the next segment back
	// (tcpi_busy_time and tcpi_rwnd_limited, Linux's tcp_chrono).
	BusyTime, RwndLimited time.Duration
	// NotSentLowat is the not-sent low-water mark in force (0 = none):
	// the connection polls writable only while NotSent is below it.
	NotSentLowat uint32
	SndWScale    int8 // -1 = window scaling off
	RcvWScale    int8
	SACK         bool
	Timestamps   bool
	// ECN reports that RFC 3168 ECN was negotiated, ECNSeen that an ECT
	// or CE marked data segment has arrived (ss's ecn and ecnseen).
	ECN, ECNSeen bool
	SndWnd       uint32 // peer's window, scaled
	RcvWnd       uint32 // our advertised window, scaled
	Unacked      uint32 // sequence space in flight (SND.MAX - SND.UNA)
	NotSent      uint32 // bytes in the send buffer not yet sent
	SndBuf       int    // send buffer capacity
	RcvBuf       int    // receive buffer capacity
	Readable     int
	OOOBytes     int // bytes in the reassembly queue
	// SndAlloc and RcvAlloc are the storage the send and receive buffers
	// hold now (it grows on demand up to SndBuf/RcvBuf, and is released
	// when a buffer empties): what the connection costs the memory budget
	// besides OOOBytes.
	SndAlloc, RcvAlloc int
	// SndBufMax and RcvBufMax are how far auto-tuning may grow the buffers
	// (equal to SndBuf/RcvBuf's initial size when locked or off).
	SndBufMax, RcvBufMax int
	// RcvSpace is receive auto-tuning's measure, the most bytes the
	// application read in one round trip (Linux's rcv_space; 0 until the
	// application has read more than ten segments), and RcvRTT the
	// receiver's RTT estimate it measures over (rcv_rtt; 0 before a sample).
	RcvSpace int
	RcvRTT   time.Duration

	BytesSent     uint64 // new data bytes sent
	BytesRetrans  uint64
	BytesAcked    uint64
	BytesReceived uint64
	SegsIn        uint64
	SegsOut       uint64
	DataSegsIn    uint64
	DataSegsOut   uint64

	Retransmits        uint32 // total retransmitted segments
	CurrentRetransmits int    // consecutive RTO expirations (backoffs)
	RTOExpirations     uint64
	FastRecoveries     uint64
	SACKedBytes        uint32 // bytes currently SACKed by the peer
	RcvOOOPack         uint32 // out-of-order segments received (Linux tcpi_rcv_ooopack)
	DupAcksIn          uint64
	DSACKsSent         uint64
	ProbesSent         uint64
	ZeroWindowProbes   int // unanswered zero-window probes
	KeepaliveProbes    int // unanswered keepalive probes
	ChallengeACKs      uint64
	ChallengeSuppress  uint64
	PAWSDrops          uint64
	OutOfWindow        uint64
	OOWACKSuppress     uint64 // answers to bare out-of-window segments withheld (Config.OutOfWindowACKInterval)
	InRecovery         bool
	// ECERcvd counts the ACKs that arrived with ECN-Echo, ECNReductions
	// the window reductions they caused (at most one per window of
	// data), CERcvd the CE-marked data segments received and CWRSent the
	// segments sent with CWR (RFC 3168 §6.1).
	ECERcvd, ECNReductions, CERcvd, CWRSent uint64
	// Recovery is the loss recovery in use ("rack", "sack", "newreno";
	// "newreno" when RACK or SACK was asked for but SACK was not agreed).
	Recovery string
	// TLPProbes counts tail-loss probes sent (RFC 8985 §7.3, Linux
	// TCPLossProbes), TLPRecoveries those that repaired a loss (Linux
	// TCPLossProbeRecovery).
	TLPProbes, TLPRecoveries uint64
	// DeliveryRate is the latest valid delivery-rate sample in bytes per
	// second (0 before the first), DeliveryAppLimited whether it was
	// application-limited, MinRTT the smallest RTT sample of the rate
	// estimator, Delivered the bytes delivered (acked or SACKed).
	DeliveryRate uint64
	// PacingRate is the rate data segments leave at, bytes per second
	// (0 = not paced).
	PacingRate         uint64
	DeliveryAppLimited bool
	MinRTT             time.Duration
	Delivered          uint64
	// BBR is the state of BBR (--cc bbr or bbr1), nil for other algorithms.
	BBR *BBRInfo

	// Linux's loss-recovery counters, with tcp_info's meanings: in
	// segments of MSS (a super-segment counts as many as it carries).
	// Lost is tcpi_lost (lost_out): segments marked lost by RACK, RFC 6675
	// IsLost, a fast retransmit or an RTO, not yet acknowledged or SACKed,
	// retransmitted or not. SACKed is tcpi_sacked (sacked_out): segments
	// SACKed above SND.UNA. Retrans is tcpi_retrans (retrans_out):
	// retransmissions in flight, neither acknowledged, SACKed nor marked
	// lost again (an RTO marks them all lost). TotalRetrans is
	// tcpi_total_retrans: segments ever retransmitted (SYNs included).
	// Reordering is tcpi_reordering: the reordering degree seen, how many
	// segments a first transmission was delivered behind a higher one
	// (Linux tcp_check_sack_reordering), 3 until more is seen, at most
	// 300 (net.ipv4.tcp_max_reordering).
	Lost, SACKed, Retrans, TotalRetrans, Reordering uint32

	// Loss recovery as Linux's tcp_info reports it, and its undos.
	// CAState is tcpi_ca_state. DSACKDups counts the segments the peer
	// reported as duplicates by D-SACK (tcpi_dsack_dups), ReordSeen the
	// ACKs that showed reordering (tcpi_reord_seen). UndoRecovery and
	// UndoRTO count fast recoveries and RTOs found spurious and undone
	// (Linux TCPFullUndo+TCPPartialUndo+TCPDSACKUndo, TCPLossUndo), of
	// which UndoDSACK were found by D-SACK (RFC 3708) and UndoTS by
	// timestamps (RFC 3522 Eifel). PRR reports that Proportional Rate
	// Reduction (RFC 6937) sets the window of the recovery under way.
	CAState               CAState
	DSACKDups, ReordSeen  uint64
	UndoRecovery, UndoRTO uint64
	UndoDSACK, UndoTS     uint64
	PRR                   bool

	Retransmit, Persist, DelayedACK, Keepalive, FinWait2, TimeWait, UserTimeout TimerInfo
}

// InfoAt is Info as of now (not before the latest time the connection was
// given): times since an event (LastDataRecv) and timer times left count
// from now.
func (c *Conn) InfoAt(now Time) Info {
	c.advanceClock(now)
	return c.Info()
}

// Info returns a snapshot of the connection. Timer times left are relative to
// the latest time the connection was given (by Input, Output or InfoAt).
func (c *Conn) Info() Info {
	var rs rareState
	if c.rs != nil {
		rs = *c.rs
	}
	in := Info{
		State:              c.state,
		CC:                 c.cc.Name(),
		RTT:                c.rto.SRTT(),
		RTTVar:             c.rto.RTTVar(),
		RTO:                c.rto.RTO(),
		CWnd:               c.cc.CWnd(),
		SSThresh:           c.cc.SSThresh(),
		MSS:                c.sndMSS,
		RcvMSS:             c.rcvMSS,
		AdvMSS:             c.cfg.MSS,
		NotSentLowat:       c.cfg.NotSentLowat,
		SndWScale:          -1,
		RcvWScale:          -1,
		SACK:               c.sackOK,
		Timestamps:         c.tsOK,
		SndWnd:             c.sndWnd,
		RcvWnd:             c.rcvWindow(),
		Unacked:            c.sndUna.Size(c.sndMax),
		SndBuf:             c.sb.Cap(),
		RcvBuf:             c.rb.Cap(),
		Readable:           c.rb.Len(),
		OOOBytes:           c.oooBytes(),
		SndAlloc:           c.sb.Allocated(),
		RcvAlloc:           c.rb.Allocated(),
		BytesSent:          c.stats.bytesSent,
		BytesRetrans:       c.stats.bytesRetrans,
		BytesAcked:         c.stats.bytesAcked,
		BytesReceived:      c.stats.bytesReceived,
		SegsIn:             c.stats.segsIn,
		SegsOut:            c.stats.segsOut,
		DataSegsIn:         c.stats.dataSegsIn,
		DataSegsOut:        c.stats.dataSegsOut,
		Retransmits:        c.stats.totalRetrans,
		CurrentRetransmits: c.rto.Backoffs(),
		RTOExpirations:     rs.rtoExpirations,
		FastRecoveries:     rs.fastRecoveries,
		SACKedBytes:        c.board.SACKedBytes(),
		RcvOOOPack:         c.stats.reordering,
		TotalRetrans:       c.stats.retransPkts,
		DupAcksIn:          c.stats.dupAcksIn,
		DSACKsSent:         rs.dsacksSent,
		ProbesSent:         rs.probesSent,
		ZeroWindowProbes:   int(c.probesOut),
		KeepaliveProbes:    int(c.kaProbes),
		ChallengeACKs:      rs.challengeACKs,
		ChallengeSuppress:  rs.challengeSuppressed,
		PAWSDrops:          rs.pawsDrops,
		OutOfWindow:        rs.outOfWindow,
		OOWACKSuppress:     rs.oowACKSuppressed,
		InRecovery:         c.inRecovery,
		ECN:                c.ecn&ecnOK != 0,
		ECNSeen:            c.ecn&ecnSeen != 0,
		ECERcvd:            rs.eceRcvd,
		ECNReductions:      rs.ecnReductions,
		CERcvd:             rs.ceRcvd,
		CWRSent:            rs.cwrSent,
		Recovery:           c.recoveryInUse().String(),
	}
	in.SndBufMax, in.RcvBufMax = c.cfg.SendBufferMax, c.cfg.RecvBufferMax
	if t := c.tune; t != nil {
		in.RcvSpace, in.RcvRTT = t.space, t.rtt
	}
	if r := c.rate; r != nil {
		in.DeliveryRate, in.DeliveryAppLimited = rateOf(r.lastDelivered, r.lastInterval), r.lastAppLimited
		in.MinRTT, in.Delivered = r.minRTT, r.delivered
		in.BusyTime, in.RwndLimited = r.chrono.times(c.clock)
		in.TLPProbes, in.TLPRecoveries = r.rack.tlpProbes, r.rack.tlpRecoveries
		u := &r.undo
		in.DSACKDups, in.ReordSeen = u.dsackDups, u.reordSeen
		in.UndoRecovery, in.UndoRTO, in.UndoDSACK, in.UndoTS = u.recoveryUndos, u.rtoUndos, u.dsackUndos, u.tsUndos
		if c.prrActive() {
			in.PRR, in.CWnd = true, r.prr.cwnd
		}
	}
	if c.state != StateSynSent && c.state != StateSynReceived && c.state != StateClosed {
		in.LastDataRecv = time.Duration(msTick(c.clock)-c.lastDataMS) * time.Millisecond
	}
	in.CAState = c.caState()
	in.PacingRate = c.pacingRate()
	c.lossCounters(&in)
	if b, ok := c.cc.(bbrInfoer); ok {
		bi := b.BBRInfo()
		in.BBR = &bi
	}
	if c.wsOK {
		in.SndWScale, in.RcvWScale = int8(c.sndWScale), int8(c.rcvWScale)
	}
	if end := c.dataEnd(); end.GreaterThan(c.sndNxt) {
		in.NotSent = c.sndNxt.Size(end)
	}
	ti := func(t *connTimer) TimerInfo {
		if !t.armed() {
			return TimerInfo{}
		}
		return TimerInfo{Armed: true, Left: t.at.Sub(c.clock)}
	}
	in.Retransmit = ti(&c.rtxTimer)
	in.Persist = ti(&c.persistTimer)
	in.DelayedACK = ti(&c.delackTimer)
	in.Keepalive = ti(&c.keepTimer)
	in.FinWait2 = ti(&c.fw2Timer)
	in.TimeWait = ti(&c.twTimer)
	in.UserTimeout = ti(&c.userTimer)
	return in
}

// SndUna returns SND.UNA, the oldest unacknowledged sequence number (for the
// stack's RFC 5927 §4.1 check of sequence numbers quoted by ICMP errors).
func (c *Conn) SndUna() Seq { return c.sndUna }

// SndNxt returns the highest sequence number sent so far plus one.
func (c *Conn) SndNxt() Seq { return c.sndMax }

// RcvNxt returns RCV.NXT (for RFC 6191 SYN acceptance in TIME-WAIT).
func (c *Conn) RcvNxt() Seq { return c.rcvNxt }

// TSRecent returns TS.Recent; ok is false when timestamps are not in use.
func (c *Conn) TSRecent() (ts uint32, ok bool) { return c.tsRecent, c.tsOK }

// SetPathMSS lowers the send MSS to mss (the path MTU less the IP and fixed
// TCP headers), learnt from ICMP Fragmentation Needed / Packet Too Big
// (RFC 1191, RFC 8201). It reports whether the MSS changed. Data in flight is
// resent at the new size right away (it was probably dropped for being too
// big); as this is not congestion, the congestion window is kept.
func (c *Conn) SetPathMSS(now Time, mss uint16) bool {
	if c.tsOK {
		if mss <= OptionTimestampLen+2 {
			return false
		}
		mss -= OptionTimestampLen + 2
	}
	mss = max(mss, minMSS)
	if mss >= c.sndMSS {
		return false
	}
	now = c.advanceClock(now)
	c.sndMSS = mss
	c.board.SetMSS(uint32(mss))
	if c.state.canSendData() && c.sndNxt != c.sndUna {
		c.rttTimer.Cancel()
		c.sndNxt = c.sndUna
		c.rtxPending = false
	}
	return true
}

// Linux's default and largest reordering degree (net.ipv4.tcp_reordering,
// net.ipv4.tcp_max_reordering), in segments.
const (
	linuxReordering    = 3
	linuxMaxReordering = 300
)

// lossCounters fills in's Linux loss-recovery counters (Lost, SACKed,
// Retrans, Reordering) from the scoreboard and the sent records: each
// record's bytes not SACKed count in segments of the MSS, rounded up, as
// Linux counts a partly SACKed skb's remainder once split.
func (c *Conn) lossCounters(in *Info) {
	mss := uint64(max(c.sndMSS, 1))
	segs := func(n uint64) uint32 { return ccSaturate((n + mss - 1) / mss) }
	for _, r := range c.board.Ranges() {
		in.SACKed += segs(uint64(r.Start.Size(r.End)))
	}
	in.Reordering = linuxReordering
	r := c.rate
	if r == nil {
		return
	}
	if d := uint64(r.rack.reordDist); d > 0 {
		in.Reordering = uint32(min(max(uint64(linuxReordering), (d+mss-1)/mss), linuxMaxReordering))
	}
	for i := r.search(c.sndUna); i < r.n; i++ {
		rec := r.at(i)
		if rec.flags&srDelivered != 0 || rec.flags&(srLost|srRtxOut) == 0 {
			continue
		}
		var left uint64
		c.board.holes(rec.start.Max(c.sndUna), rec.end(), func(s, e Seq) { left += uint64(s.Size(e)) })
		if left == 0 {
			continue
		}
		if rec.flags&srLost != 0 {
			in.Lost += segs(left)
		}
		if rec.flags&srRtxOut != 0 {
			in.Retrans += segs(left)
		}
	}
}
