package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tun"
)

// lossyTrace runs a 512 KiB transfer from stack A to stack B over a pipe
// that loses 3% of A's packets, with A tracing into a file, and returns the
// file's path and the connection's LOCAL-REMOTE key.
func lossyTrace(t *testing.T) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	la, lb := tun.NewPipe(1500)
	// MSS-sized packets, so that losses hit single segments.
	lossy := tun.NewImpaired(noGSO{la}, tun.Impairment{Loss: 0.03, Seed: 7}, nil)
	sa, err := stack.New(stack.Options{Links: []tun.Link{lossy}, Addrs: []netip.Addr{knobAddrA}, Trace: f})
	require.NoError(t, err)
	defer sa.Close()
	sb, err := stack.New(stack.Options{Links: []tun.Link{lb}, Addrs: []netip.Addr{knobAddrB}})
	require.NoError(t, err)
	defer sb.Close()
	ln, err := sb.Listen("tcp", ":9")
	require.NoError(t, err)
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- n
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := sa.DialAddrPort(ctx, netip.AddrPortFrom(knobAddrB, 9))
	require.NoError(t, err)
	key := c.LocalAddr().String() + "-" + c.RemoteAddr().String()
	const size = 512 << 10
	_, err = c.Write(bytes.Repeat([]byte("ustack"), size/6))
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())
	select {
	case n := <-got:
		require.Equal(t, int64(size/6*6), n)
	case <-time.After(30 * time.Second):
		t.Fatal("transfer did not finish")
	}
	c.Close()
	require.NoError(t, sa.Close(), "Close flushes and closes the trace")
	return path, key
}

// noGSO hides a pipe's super-packet support.
type noGSO struct{ tun.Link }

func (noGSO) GSOMaxSize() int { return 0 }

func TestPlotLossyTransfer(t *testing.T) {
	trace, key := lossyTrace(t)

	// The trace has retransmissions: data sent below the highest sequence
	// number already sent.
	f, err := os.Open(trace)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	var maxEnd uint32
	started, rtx, timers := false, 0, 0
	for sc.Scan() {
		var e struct {
			Ev, Dir, Local, Remote string
			Seq, Len               uint32
			Fired                  []string
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		require.Equal(t, key, e.Local+"-"+e.Remote)
		if e.Ev == "timer" {
			timers++
		}
		if e.Ev != "seg" || e.Dir != "out" || e.Len == 0 {
			continue
		}
		if started && int32(e.Seq-maxEnd) < 0 {
			rtx++
		}
		if !started || int32(e.Seq+e.Len-maxEnd) > 0 {
			maxEnd = e.Seq + e.Len
		}
		started = true
	}
	require.NoError(t, sc.Err())
	require.Positive(t, rtx, "a 3%% lossy transfer retransmits")

	out := filepath.Join(t.TempDir(), "tsd.png")
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"plot", trace, "-o", out}, &stdout, &stderr), stderr.String())
	require.Contains(t, stdout.String(), key)
	pf, err := os.Open(out)
	require.NoError(t, err)
	defer pf.Close()
	img, err := png.Decode(pf)
	require.NoError(t, err)
	// 1000x900 points at 96 dpi.
	require.Equal(t, 1333, img.Bounds().Dx())
	require.Equal(t, 1200, img.Bounds().Dy())
	colours := map[[4]uint32]int{}
	red := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, b, a}]++
			if r>>8 == 0xe0 && g>>8 == 0x10 && b>>8 == 0x10 {
				red++
			}
		}
	}
	require.Greater(t, len(colours), 3, "the plot is not blank")
	require.Positive(t, red, "retransmissions are drawn in red")

	// The same as SVG, with --conn named explicitly.
	svg := filepath.Join(t.TempDir(), "tsd.svg")
	stdout.Reset()
	require.Equal(t, 0, run([]string{"plot", "--conn", key, trace, "-o", svg}, &stdout, &stderr), stderr.String())
	b, err := os.ReadFile(svg)
	require.NoError(t, err)
	require.Contains(t, string(b), "<svg")
	require.Contains(t, string(b), "retransmission")
}

func TestPlotErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
		return p
	}
	good := `{"t":0,"ev":"seg","local":"198.18.0.2:9","remote":"198.18.0.1:4000","dir":"in","flags":"S","seq":100,"len":0}` + "\n" +
		`{"t":5,"ev":"seg","local":"198.18.0.2:9","remote":"198.18.0.1:4000","dir":"in","flags":"A","seq":101,"len":10}` + "\n"
	noData := `{"t":0,"ev":"seg","local":"198.18.0.2:9","remote":"198.18.0.1:4000","dir":"in","flags":"S","seq":100,"len":0}` + "\n"
	tests := []struct {
		name string
		args []string
		rc   int
		msg  string
	}{
		{"empty trace", []string{write("empty", ""), "-o", filepath.Join(dir, "x.png")}, 1, "empty trace"},
		{"not JSON", []string{write("junk", "hello\n"), "-o", filepath.Join(dir, "x.png")}, 1, "junk:1: not a trace event"},
		{"JSON but not an event", []string{write("obj", good+`{"a":1}`+"\n"), "-o", filepath.Join(dir, "x.png")}, 1, "obj:3: not a trace event"},
		{"bad dir", []string{write("dir", strings.Replace(good, `"in"`, `"sideways"`, 1)), "-o", filepath.Join(dir, "x.png")}, 1, `dir "sideways"`},
		{"no data", []string{write("nodata", noData), "-o", filepath.Join(dir, "x.png")}, 1, "carried no data"},
		{"unknown conn", []string{"--conn", "1.2.3.4:5-6.7.8.9:10", write("good", good), "-o", filepath.Join(dir, "x.png")}, 1, "no connection 1.2.3.4:5-6.7.8.9:10"},
		{"missing file", []string{filepath.Join(dir, "nope"), "-o", filepath.Join(dir, "x.png")}, 1, "no such file"},
		{"bad extension", []string{write("good2", good), "-o", filepath.Join(dir, "x.jpg")}, exitUsage, "want an output file ending in .png or .svg"},
		{"no -o", []string{write("good3", good)}, exitUsage, "want an output file"},
		{"no trace", []string{"-o", filepath.Join(dir, "x.png")}, exitUsage, "want exactly one TRACE"},
		{"two traces", []string{"a", "b", "-o", filepath.Join(dir, "x.png")}, exitUsage, "want exactly one TRACE"},
		{"ok", []string{write("good4", good), "-o", filepath.Join(dir, "ok.svg")}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			rc := run(append([]string{"plot"}, tc.args...), &stdout, &stderr)
			require.Equal(t, tc.rc, rc, stderr.String())
			if tc.msg != "" {
				require.Contains(t, stderr.String(), tc.msg)
			} else {
				require.Empty(t, stderr.String())
			}
		})
	}
}

func TestTraceFlag(t *testing.T) {
	dev, err := parseDevice(t, "--trace", "/tmp/x.jsonl")
	require.NoError(t, err)
	require.Equal(t, "/tmp/x.jsonl", dev.trace)
	dev, err = parseDevice(t)
	require.NoError(t, err)
	require.Empty(t, dev.trace, "tracing is off by default")
}
