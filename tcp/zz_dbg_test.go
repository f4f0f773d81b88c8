package tcp
import ("testing";"time")
func TestZZPath(t *testing.T){
	for _, cc := range []string{"newreno","cubic"} {
	for _, m := range []int{-1, 0} {
	la := &simLink{delay: 20 * time.Millisecond, perByte: 80 * time.Nanosecond, maxQueue: 40 * time.Millisecond}
	lb := &simLink{delay: 20 * time.Millisecond}
	n := bulk(t, cc, 32<<20, 2, la, lb, func(c *Config){ c.SendBufferSize=256<<10; c.RecvBufferSize=256<<10; c.RecvBufferMax=m; c.SendBufferMax=m })
	rcv := n.conns[1].Info(); snd := n.conns[0].Info()
	t.Logf("%s %d: %v = %.1f Mbit/s rcvbuf %d sndbuf %d cwnd %d retrans %d rto %d fr %d qdrops %d", cc, m, time.Duration(n.now), 32*8*1.048576/time.Duration(n.now).Seconds(), rcv.RcvBuf, snd.SndBuf, snd.CWnd, snd.Retransmits, snd.RTOExpirations, snd.FastRecoveries, la.stats.queueDrops)
	}}
}
