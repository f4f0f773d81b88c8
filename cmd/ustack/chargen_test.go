package main

import (
	"bytes"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestChargenPattern: RFC 864's usual pattern, 95 lines of 72 characters
// rotating through printable ASCII, CRLF-terminated, written by the handler
// until the connection fails.
func TestChargenPattern(t *testing.T) {
	lines := bytes.Split(bytes.TrimSuffix(chargenCycle, []byte("\r\n")), []byte("\r\n"))
	require.Len(t, lines, 95)
	require.Equal(t, " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg", string(lines[0]))
	require.Equal(t, "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh", string(lines[1]))
	require.Equal(t, byte('~'), lines[94][0])
	for _, l := range lines {
		require.Len(t, l, 72)
	}

	a, b := net.Pipe()
	done := make(chan struct{})
	go func() { chargenHandler(a); close(done) }()
	got := make([]byte, 2*len(chargenCycle))
	_, err := readFull(b, got)
	require.NoError(t, err)
	require.Equal(t, append(append([]byte(nil), chargenCycle...), chargenCycle...), got)
	b.Close()
	<-done // the write fails: the handler returns
}

func readFull(c net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := c.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
