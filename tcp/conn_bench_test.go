package tcp

import "testing"

type nopEmitter struct{ n int }

func (e *nopEmitter) Emit(s *Segment) { e.n += len(s.Payload) }

func benchEstablished(b *testing.B) (*Conn, Time) {
	return benchEstablishedWith(b, DefaultConfig())
}

func benchEstablishedWith(b *testing.B, cfg Config) (*Conn, Time) {
	c := Dial(0, cfg, tISS)
	var e nopEmitter
	c.Output(0, &e)
	sa := Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 65535,
		Options: Options{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7, SACKPermitted: true,
			HasTimestamp: true, TSVal: 1, TSEcr: c.tsNow(0)}}
	c.Input(ms, &sa)
	c.Output(ms, &e)
	if c.State() != StateEstablished {
		b.Fatal(c.State())
	}
	return c, ms
}

// BenchmarkInputData is the per-segment receive path: an in-order
// full-sized segment in, the application reads it, the (delayed) ACK out.
func BenchmarkInputData(b *testing.B) {
	c, now := benchEstablished(b)
	payload := make([]byte, 1448)
	buf := make([]byte, 4096)
	var e nopEmitter
	s := Segment{Flags: FlagACK, Ack: tISS + 1, Window: 1024,
		Options: Options{HasTimestamp: true, TSVal: 2, TSEcr: 1}, Payload: payload}
	seq := tPeer + 1
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Seq = seq
		s.Options.TSVal++
		c.Input(now, &s)
		seq += Seq(len(payload))
		c.Read(buf)
		c.Output(now, &e)
		now += 1000
	}
	if c.rcvNxt != seq {
		b.Fatalf("RCV.NXT %d, want %d", c.rcvNxt, seq)
	}
}

// BenchmarkOutputData is the per-segment transmit path: the application
// writes a segment's worth, Output emits it, the peer's ACK comes in.
func BenchmarkOutputData(b *testing.B) { benchOutput(b, DefaultConfig(), 1) }

// BenchmarkOutputDataGSO is the transmit path with offloads: the
// application writes 8 segments' worth, Output sizes and emits them as
// super-segments (tso.go), the peer's ACK of all of it comes in.
func BenchmarkOutputDataGSO(b *testing.B) {
	cfg := DefaultConfig()
	cfg.GSOMaxSize = 65536
	benchOutput(b, cfg, 8)
}

// benchOutput writes segs full segments, runs Output and ACKs them, b.N
// times, on an established connection with cfg.
func benchOutput(b *testing.B, cfg Config, segs int) {
	c, now := benchEstablishedWith(b, cfg)
	c.SetNoDelay(true)
	payload := make([]byte, segs*1448)
	var e nopEmitter
	ack := Segment{Flags: FlagACK, Seq: tPeer + 1, Window: 1024,
		Options: Options{HasTimestamp: true, TSVal: 2, TSEcr: 1}}
	una := tISS + 1
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Write(payload)
		c.Output(now, &e)
		una += Seq(len(payload))
		ack.Ack = una
		ack.Options.TSVal++
		now += 1000
		c.Input(now, &ack)
	}
	if e.n != b.N*len(payload) {
		b.Fatalf("emitted %d bytes, want %d", e.n, b.N*len(payload))
	}
}
