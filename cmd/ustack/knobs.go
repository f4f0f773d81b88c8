package main

import (
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// knobFlags are the experiment knobs serve and dial share: link impairment
// and the per-connection TCP settings of tcp.Config.
type knobFlags struct {
	impair     string
	sndbuf     string
	rcvbuf     string
	sndbufMax  string
	rcvbufMax  string
	delayedACK string
	nodelay    bool
	sack       bool
	timestamps bool
	wscale     bool
	pacing     bool
	hystart    hystartFlag
	prr        bool
	recovery   string
	ecn        ecnFlag
}

// ecnFlag is --ecn: a boolean flag (--ecn alone means on) that also takes
// accept, the default.
type ecnFlag struct{ mode tcp.ECNMode }

func (f *ecnFlag) String() string   { return f.mode.String() }
func (f *ecnFlag) IsBoolFlag() bool { return true }
func (f *ecnFlag) Set(s string) error {
	m, err := tcp.ParseECNMode(s)
	if err != nil {
		return fmt.Errorf("want on (or true), accept or off (or false)")
	}
	f.mode = m
	return nil
}

// maxDelayedACK bounds --delayed-ack: RFC 1122 §4.2.3.2 says the delay
// MUST be less than 0.5 seconds.
const maxDelayedACK = 500 * time.Millisecond

func (k *knobFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.impair, "impair", "", "impair the packets ustack sends (ustack -> kernel only; what the kernel sends\n"+
		"arrives untouched): loss=1%,dup=0.1%,reorder=1%,delay=20ms,jitter=5ms,corrupt=0.01%,seed=N\n"+
		"(also depth=N, limit=N), in real time. With --offload a super-segment counts as one packet;\n"+
		"add --offload=false for per-segment loss (\"\" for none)")
	fs.StringVar(&k.sndbuf, "sndbuf", "256K", "send buffer of each connection in bytes, K/M suffixes allowed (4K-64M)")
	fs.StringVar(&k.rcvbuf, "rcvbuf", "256K", "receive buffer of each connection in bytes, K/M suffixes allowed (4K-64M);\nthe advertised window comes from its free space. Auto-tuning starts from it")
	fs.StringVar(&k.sndbufMax, "sndbuf-max", "4M", "send buffer auto-tuning: how far a send buffer may grow with the congestion\nwindow (twice cwnd while the application keeps it full), like Linux tcp_wmem[2];\noff (or at most --sndbuf) keeps it at --sndbuf")
	fs.StringVar(&k.rcvbufMax, "rcvbuf-max", "6M", "receive buffer auto-tuning: how far a receive buffer may grow toward what the\napplication reads per round trip, like Linux tcp_rmem[2] (tcp_rcv_space_adjust);\noff (or at most --rcvbuf) keeps it at --rcvbuf. The window scale covers it")
	fs.StringVar(&k.delayedACK, "delayed-ack", "40ms", "delayed-ACK timeout, below 500ms (RFC 1122 4.2.3.2); 0 or off acknowledges every segment at once")
	fs.BoolVar(&k.nodelay, "nodelay", false, "disable Nagle's algorithm (RFC 896): send small segments while data is unacknowledged")
	fs.BoolVar(&k.sack, "sack", true, "offer and use selective acknowledgments (RFC 2018); --sack=false turns them off")
	fs.BoolVar(&k.timestamps, "timestamps", true, "offer and use the timestamps option (RFC 7323 3); --timestamps=false turns it off")
	fs.BoolVar(&k.wscale, "wscale", true, "offer and use window scaling (RFC 7323 2); --wscale=false caps windows at 64 KiB")
	fs.StringVar(&k.recovery, "recovery", "rack", "loss recovery: rack (RFC 8985 RACK-TLP: time-based loss detection and tail-loss\n"+
		"probes, Linux's default), sack (RFC 6675 duplicate-threshold) or newreno (RFC 6582, duplicate\n"+
		"ACKs only); rack and sack need SACK and fall back to newreno without it")
	fs.BoolVar(&k.prr, "prr", true, "proportional rate reduction (RFC 6937, PRR-SSRB as Linux) in SACK recovery: the window\n"+
		"falls to ssthresh over the recovery's round trip instead of at once; --prr=false turns it off")
	fs.Var(&k.hystart, "hystart", "HyStart++ (RFC 9406) in the initial slow start: after an RTT rise of max(4ms, min(minRTT/8, 16ms))\n"+
		"growth slows to a quarter for 5 rounds, then slow start ends. Unset, it is on for cubic (as Linux's CUBIC has\n"+
		"its HyStart on) and off for newreno; --hystart or --hystart=false choose for both")
	fs.Var(&k.ecn, "ecn", "RFC 3168 ECN, as Linux's net.ipv4.tcp_ecn: --ecn (on, tcp_ecn=1) asks for it on the connections\n"+
		"ustack opens and accepts it on those it accepts; accept (the default, tcp_ecn=2) only accepts it;\n"+
		"off (tcp_ecn=0) never. With it, data goes ECT(0) and CE marks cut cwnd once per window, as a loss would")
	fs.BoolVar(&k.pacing, "pacing", false, "pace data segments even when the congestion control sets no rate: Linux's default of\n"+
		"2x cwnd/srtt in slow start, 1.2x after; with --offload, super-segments carry about 1 ms at that rate")
}

// parseByteSize parses a buffer size with an optional K, M or G suffix
// (binary: 1K = 1024), e.g. 65536, 256K, 4M (see parseMemSize). Counts too
// big for a buffer come back as MaxBufferSize+1 so the caller reports a
// range error.
func parseByteSize(s string) (int, bool) {
	v, ok := parseMemSize(s)
	if !ok {
		return 0, false
	}
	if v > tcp.MaxBufferSize {
		return tcp.MaxBufferSize + 1, true
	}
	return int(v), true
}

// bufferFlag validates one of --sndbuf/--rcvbuf.
func bufferFlag(name, s string) (int, error) {
	n, ok := parseByteSize(s)
	if !ok {
		return 0, fmt.Errorf("--%s %q: want a byte count such as 262144, 256K or 4M", name, s)
	}
	if n < tcp.MinBufferSize || n > tcp.MaxBufferSize {
		return 0, fmt.Errorf("--%s %s: want 4K to 64M (%d to %d bytes)", name, s, tcp.MinBufferSize, tcp.MaxBufferSize)
	}
	return n, nil
}

// bufferMaxFlag validates one of --sndbuf-max/--rcvbuf-max: a size as for
// bufferFlag, or off (-1: auto-tuning off, see tcp.Config.SendBufferMax).
func bufferMaxFlag(name, s string) (int, error) {
	if s == "off" || s == "0" {
		return -1, nil
	}
	n, ok := parseByteSize(s)
	if !ok {
		return 0, fmt.Errorf("--%s %q: want a byte count such as 4194304, 4M or 6M, or off", name, s)
	}
	if n < tcp.MinBufferSize || n > tcp.MaxBufferSize {
		return 0, fmt.Errorf("--%s %s: want 4K to 64M (%d to %d bytes), or off", name, s, tcp.MinBufferSize, tcp.MaxBufferSize)
	}
	return n, nil
}

// parseDelayedACK turns --delayed-ack into tcp.Config.DelayedACK, where a
// negative value disables delayed ACKs.
func parseDelayedACK(s string) (time.Duration, error) {
	if s == "off" || s == "0" {
		return -1, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("--delayed-ack %q: want a duration such as 40ms, or 0/off to disable", s)
	}
	if d == 0 {
		return -1, nil
	}
	if d < 0 || d >= maxDelayedACK {
		return 0, fmt.Errorf("--delayed-ack %v: want more than 0 and less than 500ms (RFC 1122 4.2.3.2), or 0/off to disable", d)
	}
	return d, nil
}

// apply validates the knobs and writes them into cfg and the impairment.
func (k *knobFlags) apply(cfg *tcp.Config) (tun.Impairment, error) {
	imp, err := tun.ParseImpairment(k.impair)
	if err != nil {
		return imp, fmt.Errorf("--impair: %v", err)
	}
	if cfg.SendBufferSize, err = bufferFlag("sndbuf", k.sndbuf); err != nil {
		return imp, err
	}
	if cfg.RecvBufferSize, err = bufferFlag("rcvbuf", k.rcvbuf); err != nil {
		return imp, err
	}
	if cfg.SendBufferMax, err = bufferMaxFlag("sndbuf-max", k.sndbufMax); err != nil {
		return imp, err
	}
	if cfg.RecvBufferMax, err = bufferMaxFlag("rcvbuf-max", k.rcvbufMax); err != nil {
		return imp, err
	}
	if cfg.DelayedACK, err = parseDelayedACK(k.delayedACK); err != nil {
		return imp, err
	}
	cfg.NoDelay = k.nodelay
	cfg.DisableSACK = !k.sack
	cfg.DisableTimestamps = !k.timestamps
	cfg.DisableWindowScale = !k.wscale
	cfg.Pacing = k.pacing
	cfg.HyStart = k.hystart.mode
	cfg.ECN = k.ecn.mode
	cfg.DisablePRR = !k.prr
	if cfg.Recovery, err = tcp.ParseRecovery(k.recovery); err != nil {
		return imp, fmt.Errorf("--recovery %q: want %s", k.recovery, strings.Join(tcp.RecoveryNames(), ", "))
	}
	return imp, nil
}

// impairLink wraps l with the device's impairment (in real time), or
// returns it unchanged when there is none.
func (dev *device) impairLink(log *slog.Logger, l tun.Link) (tun.Link, *tun.Impaired) {
	if dev.impair.IsZero() {
		return l, nil
	}
	im := tun.NewImpaired(l, dev.impair, nil)
	log.Info("impairing packets ustack sends", "impair", im.Impairment().String())
	return im, im
}

// ccChoices lists the registered congestion control algorithms as prose:
// "newreno, cubic or bbr", "newreno, cubic, bbr or vegas".
func ccChoices() string {
	names := tcp.CongestionControls()
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// ccFlagHelp is the usage line of --cc.
func ccFlagHelp() string {
	return "congestion control: " + ccChoices() + " (any algorithm registered with tcp.RegisterCongestionControl)"
}

// checkCC validates --cc against the registry.
func checkCC(name string) error {
	cfg := tcp.Config{CongestionControl: name}
	if name == "" || cfg.Validate() != nil {
		return fmt.Errorf("--cc %q: want %s", name, ccChoices())
	}
	return nil
}

// hystartFlag is --hystart: a boolean flag that also knows whether it was
// given (unset leaves tcp.HyStartDefault).
type hystartFlag struct{ mode tcp.HyStartMode }

func (f *hystartFlag) String() string {
	switch f.mode {
	case tcp.HyStartOn:
		return "true"
	case tcp.HyStartOff:
		return "false"
	}
	return ""
}

func (f *hystartFlag) Set(s string) error {
	on, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false, got %q", s)
	}
	f.mode = tcp.HyStartOff
	if on {
		f.mode = tcp.HyStartOn
	}
	return nil
}

func (f *hystartFlag) IsBoolFlag() bool { return true }
