package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// runPlot is `ustack plot`: a tcptrace-style time-sequence diagram and the
// congestion state over time of one connection of a --trace file.
func runPlot(args []string, stdout, stderr io.Writer) int {
	var out, conn string
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&out, "o", "", "output file: .png or .svg (required)")
	fs.StringVar(&conn, "conn", "", "the connection to draw, LOCAL-REMOTE as in the trace (e.g. 198.18.0.2:80-198.18.0.1:41234);\ndefault: the one that carried the most bytes")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack plot TRACE -o OUT.png|OUT.svg [--conn LOCAL-REMOTE]\n\n"+
			"Draws one connection of a trace written by 'ustack serve/dial --trace' as a tcptrace-style\n"+
			"time-sequence diagram (data segments as bars of sequence vs time, retransmissions in red,\n"+
			"the ACK line, the receive-window line ACK+window, SACKed ranges in green, RTO firings) above\n"+
			"cwnd and ssthresh and the smoothed RTT over time. The sequence axis is relative to the\n"+
			"first sequence number of the direction that carried more data.\n\nflags:\n")
		fs.PrintDefaults()
	}
	// Flags may come before and after TRACE (ustack plot TRACE -o X).
	var pos []string
	for {
		if rc := parseFlags(fs, args); rc >= 0 {
			return rc
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "ustack plot: want exactly one TRACE argument (see ustack plot --help)\n")
		return exitUsage
	}
	ext := strings.ToLower(filepath.Ext(out))
	if ext != ".png" && ext != ".svg" {
		fmt.Fprintf(stderr, "ustack plot: -o %q: want an output file ending in .png or .svg\n", out)
		return exitUsage
	}
	f, err := os.Open(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "ustack plot: %v\n", err)
		return 1
	}
	evs, err := readTrace(f, pos[0])
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "ustack plot: %v\n", err)
		return 1
	}
	cs, err := pickConn(evs, conn)
	if err != nil {
		fmt.Fprintf(stderr, "ustack plot: %s: %v\n", pos[0], err)
		return 1
	}
	if err := drawConn(cs, out, ext); err != nil {
		fmt.Fprintf(stderr, "ustack plot: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s, %d data segments (%d retransmitted), %d bytes\n", out, cs.key, cs.dataSegs, cs.retrans, cs.bytes)
	return 0
}

// traceLine is one event of the trace (stack/trace.go writes them).
type traceLine struct {
	T        *int64     `json:"t"`
	Ev       string     `json:"ev"`
	Local    string     `json:"local"`
	Remote   string     `json:"remote"`
	Dir      string     `json:"dir"`
	Flags    string     `json:"flags"`
	Seq      uint32     `json:"seq"`
	Ack      uint32     `json:"ack"`
	Len      uint32     `json:"len"`
	WinBytes uint64     `json:"win_bytes"`
	SACK     [][]uint32 `json:"sack"`
	CWnd     *uint32    `json:"cwnd"`
	SSThresh uint32     `json:"ssthresh"`
	SRTT     int64      `json:"srtt_ns"`
	Fired    []string   `json:"fired"`
}

// readTrace parses every line of a trace; a line that is not a trace event
// is an error naming it.
func readTrace(r io.Reader, name string) ([]traceLine, error) {
	var evs []traceLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var e traceLine
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s:%d: not a trace event: %v", name, n, err)
		}
		if e.T == nil || e.Ev == "" || e.Local == "" || e.Remote == "" {
			return nil, fmt.Errorf("%s:%d: not a trace event: want t, ev, local and remote", name, n)
		}
		if e.Ev == "seg" && e.Dir != "in" && e.Dir != "out" {
			return nil, fmt.Errorf("%s:%d: segment with dir %q: want in or out", name, n, e.Dir)
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("%s: empty trace: no events (was it written with --trace?)", name)
	}
	return evs, nil
}

// connSeries is what is drawn of one connection.
type connSeries struct {
	key      string
	dataDir  string       // "out" or "in": the direction whose data is drawn
	sent     [][4]float64 // data segments as bars: x0, y0, x1, y1
	rtx      [][4]float64 // retransmitted data segments
	sacked   [][4]float64 // SACK blocks in the ACK direction
	acks     plotter.XYs
	rwnd     plotter.XYs
	rto      plotter.XYs // RTO firings, marked on the ACK line
	cwnd     plotter.XYs
	ssthresh plotter.XYs
	srtt     plotter.XYs
	dataSegs int
	retrans  int
	bytes    uint64
}

// pickConn chooses the connection to draw and builds its series.
func pickConn(evs []traceLine, want string) (*connSeries, error) {
	type tally struct{ out, in uint64 }
	bytes := map[string]*tally{}
	var order []string
	for i := range evs {
		e := &evs[i]
		k := e.Local + "-" + e.Remote
		t := bytes[k]
		if t == nil {
			t = &tally{}
			bytes[k] = t
			order = append(order, k)
		}
		if e.Ev == "seg" {
			if e.Dir == "out" {
				t.out += uint64(e.Len)
			} else {
				t.in += uint64(e.Len)
			}
		}
	}
	key := want
	if key == "" {
		var best uint64
		for _, k := range order {
			if b := bytes[k].out + bytes[k].in; key == "" || b > best {
				key, best = k, b
			}
		}
	} else if bytes[key] == nil {
		sort.Strings(order)
		if len(order) > 10 {
			order = append(order[:10], "...")
		}
		return nil, fmt.Errorf("no connection %s in the trace; it has %s", want, strings.Join(order, ", "))
	}
	cs := &connSeries{key: key, dataDir: "out"}
	if bytes[key].in > bytes[key].out {
		cs.dataDir = "in"
	}
	var t0 int64 = -1
	for i := range evs {
		if e := &evs[i]; e.Local+"-"+e.Remote == key && (t0 < 0 || *e.T < t0) {
			t0 = *e.T
		}
	}
	var base uint32
	haveBase := false
	var maxEnd float64
	for i := range evs {
		e := &evs[i]
		if e.Local+"-"+e.Remote != key {
			continue
		}
		x := float64(*e.T-t0) / 1e9
		if e.Ev == "timer" {
			for _, f := range e.Fired {
				if f == "retransmit" && haveBase {
					cs.rto = append(cs.rto, plotter.XY{X: x, Y: maxAckY(cs)})
				}
			}
		}
		if e.CWnd != nil && (e.Ev != "seg" || e.Dir == "out") {
			cs.cwnd = append(cs.cwnd, plotter.XY{X: x, Y: float64(*e.CWnd)})
			// ssthresh starts "infinite" (RFC 5681 §3.1: arbitrarily high).
			if e.SSThresh < 1<<30 {
				cs.ssthresh = append(cs.ssthresh, plotter.XY{X: x, Y: float64(e.SSThresh)})
			}
			if e.SRTT > 0 {
				cs.srtt = append(cs.srtt, plotter.XY{X: x, Y: float64(e.SRTT) / 1e6})
			}
		}
		if e.Ev != "seg" {
			continue
		}
		if e.Dir == cs.dataDir {
			if !haveBase && (strings.Contains(e.Flags, "S") || e.Len > 0) {
				base, haveBase = e.Seq, true
				if strings.Contains(e.Flags, "S") {
					base++
				}
			}
			if e.Len == 0 || !haveBase {
				continue
			}
			y0 := float64(e.Seq - base)
			y1 := y0 + float64(e.Len)
			bar := [4]float64{x, y0, x, y1}
			cs.dataSegs++
			cs.bytes += uint64(e.Len)
			if y0 < maxEnd {
				cs.rtx = append(cs.rtx, bar)
				cs.retrans++
			} else {
				cs.sent = append(cs.sent, bar)
			}
			maxEnd = math.Max(maxEnd, y1)
			continue
		}
		if !haveBase || !strings.Contains(e.Flags, "A") {
			continue
		}
		ay := float64(int64(int32(e.Ack - base)))
		cs.acks = append(cs.acks, plotter.XY{X: x, Y: ay})
		cs.rwnd = append(cs.rwnd, plotter.XY{X: x, Y: ay + float64(e.WinBytes)})
		for _, b := range e.SACK {
			if len(b) == 2 {
				cs.sacked = append(cs.sacked, [4]float64{x, float64(b[0] - base), x, float64(b[1] - base)})
			}
		}
	}
	if cs.dataSegs == 0 {
		return nil, fmt.Errorf("connection %s carried no data: nothing to draw", key)
	}
	return cs, nil
}

// maxAckY is where an RTO firing is marked: on the ACK line.
func maxAckY(cs *connSeries) float64 {
	if n := len(cs.acks); n > 0 {
		return cs.acks[n-1].Y
	}
	return 0
}

// bars draws line segments given in data coordinates (tcptrace's segment
// bars and SACK ranges); plotter.Line would join them.
type bars struct {
	segs  [][4]float64
	style draw.LineStyle
}

// Plot implements plot.Plotter.
func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, s := range b.segs {
		x0, y0, x1, y1 := trX(s[0]), trY(s[1]), trX(s[2]), trY(s[3])
		if y1-y0 < b.style.Width {
			y1 = y0 + b.style.Width // a 1-byte segment is still visible
		}
		c.StrokeLine2(b.style, x0, y0, x1, y1)
	}
}

// DataRange implements plot.DataRanger.
func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, ymin = math.Inf(1), math.Inf(1)
	xmax, ymax = math.Inf(-1), math.Inf(-1)
	for _, s := range b.segs {
		xmin, xmax = math.Min(xmin, s[0]), math.Max(xmax, s[2])
		ymin, ymax = math.Min(ymin, s[1]), math.Max(ymax, s[3])
	}
	return
}

// Thumbnail implements plot.Thumbnailer for the legend.
func (b *bars) Thumbnail(c *draw.Canvas) {
	x := (c.Min.X + c.Max.X) / 2
	c.StrokeLine2(b.style, x, c.Min.Y, x, c.Max.Y)
}

var (
	colData  = color.RGBA{R: 0x20, G: 0x40, B: 0xc0, A: 0xff}
	colRtx   = color.RGBA{R: 0xe0, G: 0x10, B: 0x10, A: 0xff}
	colSACK  = color.RGBA{R: 0x10, G: 0xa0, B: 0x30, A: 0xff}
	colAck   = color.RGBA{R: 0x80, G: 0x80, B: 0x00, A: 0xff}
	colWnd   = color.RGBA{R: 0x90, G: 0x40, B: 0xb0, A: 0xff}
	colBlack = color.RGBA{A: 0xff}
)

func line(xys plotter.XYs, c color.Color, step bool) (*plotter.Line, error) {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil, err
	}
	l.Color = c
	l.Width = vg.Points(1)
	if step {
		l.StepStyle = plotter.PostStep
	}
	return l, nil
}

// drawConn renders cs into out: the time-sequence diagram on top (60%), cwnd
// and ssthresh below it, the smoothed RTT at the bottom.
func drawConn(cs *connSeries, out, ext string) error {
	dir := "sent by local"
	if cs.dataDir == "in" {
		dir = "received by local"
	}
	seq := plot.New()
	seq.Title.Text = fmt.Sprintf("%s (data %s)", strings.Replace(cs.key, "-", " → ", 1), dir)
	seq.Y.Label.Text = "relative sequence number"
	seq.Legend.Top, seq.Legend.Left = true, true
	seq.Add(plotter.NewGrid())
	add := func(p *plot.Plot, name string, pl plot.Plotter) {
		p.Add(pl)
		if th, ok := pl.(plot.Thumbnailer); ok && name != "" {
			p.Legend.Add(name, th)
		}
	}
	if len(cs.rwnd) > 0 {
		l, err := line(cs.rwnd, colWnd, true)
		if err != nil {
			return err
		}
		add(seq, "receive window", l)
		l, err = line(cs.acks, colAck, true)
		if err != nil {
			return err
		}
		add(seq, "ACK", l)
	}
	w := vg.Points(1.5)
	add(seq, "data", &bars{segs: cs.sent, style: draw.LineStyle{Color: colData, Width: w}})
	if len(cs.rtx) > 0 {
		add(seq, "retransmission", &bars{segs: cs.rtx, style: draw.LineStyle{Color: colRtx, Width: w}})
	}
	if len(cs.sacked) > 0 {
		add(seq, "SACKed", &bars{segs: cs.sacked, style: draw.LineStyle{Color: colSACK, Width: w}})
	}
	if len(cs.rto) > 0 {
		sc, err := plotter.NewScatter(cs.rto)
		if err != nil {
			return err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: colRtx, Radius: vg.Points(4), Shape: draw.CrossGlyph{}}
		add(seq, "RTO", sc)
	}

	cw := plot.New()
	cw.Y.Label.Text = "bytes"
	cw.Legend.Top, cw.Legend.Left = true, true
	cw.Add(plotter.NewGrid())
	if len(cs.cwnd) > 0 {
		l, err := line(cs.cwnd, colData, true)
		if err != nil {
			return err
		}
		add(cw, "cwnd", l)
	}
	if len(cs.ssthresh) > 0 {
		l, err := line(cs.ssthresh, colRtx, true)
		if err != nil {
			return err
		}
		add(cw, "ssthresh", l)
	}
	rtt := plot.New()
	rtt.X.Label.Text = "time (s)"
	rtt.Y.Label.Text = "srtt (ms)"
	rtt.Add(plotter.NewGrid())
	if len(cs.srtt) > 0 {
		l, err := line(cs.srtt, colBlack, true)
		if err != nil {
			return err
		}
		add(rtt, "", l)
	}
	// One time axis for the three panels.
	xmax := 0.0
	for _, p := range []*plot.Plot{seq, cw, rtt} {
		xmax = math.Max(xmax, p.X.Max)
	}
	for _, p := range []*plot.Plot{seq, cw, rtt} {
		p.X.Min, p.X.Max = 0, xmax
		p.Y.Tick.Marker = plainTicks{}
		if p.Y.Min > 0 {
			p.Y.Min = 0
		}
	}

	width, height := vg.Points(1000), vg.Points(900)
	var c vg.CanvasWriterTo
	if ext == ".svg" {
		c = vgsvg.New(width, height)
	} else {
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(96))}
	}
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	seq.Draw(draw.Crop(dc, 0, 0, 0.4*height, 0))
	cw.Draw(draw.Crop(dc, 0, 0, 0.2*height, -0.6*height))
	rtt.Draw(draw.Crop(dc, 0, 0, 0, -0.8*height))

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return f.Close()
}

// plainTicks are gonum's default ticks labelled without trailing zeros
// (sequence numbers and byte counts are integers: 750000, not 750000.00).
type plainTicks struct{}

// Ticks implements plot.Ticker.
func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}
