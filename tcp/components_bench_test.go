package tcp

import (
	"testing"
	"time"
)

// Benchmarks of the per-segment operations of the tcp building blocks. Each
// must report 0 allocs/op in steady state.

func BenchmarkSendBufferWritePeekAck(b *testing.B) {
	var sb sendBuffer
	sb.SetCap(256 << 10)
	seg := make([]byte, 1460)
	b.SetBytes(int64(len(seg)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if sb.Write(seg) != len(seg) {
			b.Fatal("short write")
		}
		if len(sb.Peek(sb.Len()-len(seg), len(seg))) != len(seg) {
			b.Fatal("short peek")
		}
		if sb.Len() > 128<<10 {
			sb.Ack(64 << 10)
		}
	}
}

func BenchmarkSendBufferPeekSuperSegment(b *testing.B) {
	var sb sendBuffer
	sb.SetCap(4 << 20)
	chunk := make([]byte, 64<<10)
	for sb.Free() > 0 {
		sb.Write(chunk)
	}
	b.SetBytes(64 << 10)
	b.ReportAllocs()
	b.ResetTimer()
	off := 0
	for i := 0; i < b.N; i++ {
		if len(sb.Peek(off, 64<<10)) != 64<<10 {
			b.Fatal("short peek")
		}
		off += 61 << 10
		if off > sb.Len()-64<<10 {
			off = 0
		}
	}
}

func BenchmarkRecvBufferWriteRead(b *testing.B) {
	var rb recvBuffer
	rb.SetCap(256 << 10)
	seg := make([]byte, 1460)
	out := make([]byte, 4096)
	b.SetBytes(int64(len(seg)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rb.Write(seg)
		if rb.Len() > 64<<10 {
			for rb.Len() > 0 {
				rb.Read(out)
			}
		}
	}
}

// BenchmarkReassemblyOutOfOrder: one segment is missing, nine arrive out of
// order, then the hole is filled and everything is popped — per segment.
func BenchmarkReassemblyOutOfOrder(b *testing.B) {
	q := newReassemblyQueue(1 << 20)
	seg := make([]byte, 1460)
	var sacks [4]SACKBlock
	var delivered int
	deliver := func(p []byte) { delivered += len(p) }
	rcvNxt := Seq(1)
	b.SetBytes(int64(len(seg)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		k := uint32(i % 10)
		if k == 9 {
			// The retransmission of the first segment arrives in order.
			rcvNxt = rcvNxt.Add(1460)
			rcvNxt = q.Pop(rcvNxt, deliver)
			continue
		}
		if stored, _ := q.Insert(rcvNxt.Add((k+1)*1460), seg, rcvNxt); !stored {
			b.Fatal("refused")
		}
		_ = q.SACKBlocksN(sacks[:0], 3, nil)
	}
}

func BenchmarkScoreboardUpdate(b *testing.B) {
	var s sendScoreboard
	s.SetMSS(1460)
	una := Seq(1000)
	nxt := una.Add(100 * 1460)
	blocks := make([]SACKBlock, 3)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		k := uint32(i%32) * 3
		// Losses every third segment: SACKs for the other two.
		blocks[0] = SACKBlock{Start: una.Add((k + 1) * 1460), End: una.Add((k + 3) * 1460)}
		blocks[1] = SACKBlock{Start: una.Add((k + 4) * 1460), End: una.Add((k + 6) * 1460)}
		blocks[2] = SACKBlock{Start: una.Add((k + 7) * 1460), End: una.Add((k + 9) * 1460)}
		s.UpdateSACK(una, nxt, blocks)
		if _, _, ok := s.NextSegToRetransmit(una, nxt, 1460, una); !ok && i > 3 {
			b.Fatal("no loss found")
		}
		_ = s.Pipe(una, nxt, una)
		if i%32 == 31 {
			s.Reset()
		}
	}
}

func BenchmarkCCOnAck(b *testing.B) {
	for _, name := range ccNames {
		b.Run(name, func(b *testing.B) {
			cc, _ := newCongestionControl(name, 1460, 0)
			cc.SetCWnd(1 << 20)
			cc.OnEnterRecovery(0, 1<<20)
			cc.OnExitRecovery(0)
			now := Time(0)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				now = now.Add(10 * time.Microsecond)
				cc.OnAck(now, 2920, 10*time.Millisecond, 1<<20)
				if i%100000 == 99999 {
					cc.OnEnterRecovery(now, cc.CWnd())
					cc.OnExitRecovery(now)
				}
			}
		})
	}
}

func BenchmarkRTOSample(b *testing.B) {
	r := newRTOEstimator(0, 0, 0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.Sample(time.Duration(10+i%7) * time.Millisecond)
		_ = r.RTO()
	}
}
