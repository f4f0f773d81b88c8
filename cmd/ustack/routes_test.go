package main

import (
	"bytes"
	"flag"
	"io"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/stack"
)

// validateDevice parses serve's device flags from args.
func validateDevice(t *testing.T, args ...string) (*device, error) {
	t.Helper()
	var d deviceFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	d.register(fs)
	require.NoError(t, fs.Parse(args))
	return d.validate()
}

// --link adds devices and --route maps prefixes onto them by name or
// index, with an optional gateway; the result is what stack.Options gets.
func TestRouteFlags(t *testing.T) {
	dev, err := validateDevice(t,
		"--link", "ustack1,host-addr=198.18.1.1/24,host-addr6=2001:2:0:1::1/64",
		"--link", "ustack2,host-addr6=2001:2:0:2::1/64",
		"--route", "198.19.0.0/16,via=198.18.1.1,link=ustack1",
		"--route", "198.18.1.0/24,link=1",
		"--route", "2001:2:0:2::/64,link=ustack2",
		"--route", "::/0",
		"--route", "198.19.7.9/24,link=ustack0")
	require.NoError(t, err)
	require.Len(t, dev.extra, 2)
	assert.Equal(t, extraLink{name: "ustack1", hostAddrs: []netip.Prefix{netip.MustParsePrefix("198.18.1.1/24"), netip.MustParsePrefix("2001:2:0:1::1/64")}}, dev.extra[0])
	assert.Equal(t, "ustack2", dev.extra[1].name)
	assert.Equal(t, []stack.Route{
		{Prefix: netip.MustParsePrefix("198.19.0.0/16"), Link: 1, Via: netip.MustParseAddr("198.18.1.1")},
		{Prefix: netip.MustParsePrefix("198.18.1.0/24"), Link: 1},
		{Prefix: netip.MustParsePrefix("2001:2:0:2::/64"), Link: 2},
		{Prefix: netip.MustParsePrefix("::/0"), Link: 0},
	}, dev.routes[:4])
	assert.Equal(t, "198.19.7.0/24", dev.routes[4].Prefix.String(), "masked")

	dev, err = validateDevice(t)
	require.NoError(t, err)
	assert.Empty(t, dev.routes, "one device needs no routes")
	assert.Empty(t, dev.extra)
}

func TestRouteFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--route", "10.0.0.0"}, `--route "10.0.0.0": the first part must be a prefix`},
		{[]string{"--route", "198.19.0.0/16,link=ustack9"}, `link "ustack9": no such device (have ustack0, or 0-0)`},
		{[]string{"--route", "198.19.0.0/16,link=1"}, `link "1": no such device`},
		{[]string{"--route", "198.19.0.0/16,via=2001:2::1"}, `via "2001:2::1": want a unicast address of the prefix's family`},
		{[]string{"--route", "198.19.0.0/16,dev=x"}, `"dev=x" is not via=GATEWAY or link=NAME|N`},
		{[]string{"--route", "198.19.0.0/16,link=0,link=0"}, `once each`},
		{[]string{"--route", "::ffff:198.19.0.0/112"}, "write an IPv4 prefix as IPv4"},
		{[]string{"--route", "198.19.0.0/16", "--route", "198.19.1.0/16"}, "198.19.0.0/16 has a route already"},
		{[]string{"--link", "ustack1"}, "no host-addr or host-addr6"},
		{[]string{"--link", "ustack0,host-addr=198.18.1.1/24"}, "device ustack0 is named twice"},
		{[]string{"--link", "ustack1,host-addr=198.18.0.9/16"}, "198.18.0.9/16 overlaps 198.18.0.1/24 of another device"},
		{[]string{"--link", "ustack1,host-addr=2001:2:0:1::1/64"}, "host-addr 2001:2:0:1::1/64: wrong family"},
		{[]string{"--link", "ustack1,host-addr=x"}, `host-addr "x": want an address with a prefix length`},
		{[]string{"--link", "a/b,host-addr=198.18.1.1/24"}, "the device name must be"},
	} {
		_, err := validateDevice(t, tc.args...)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want, "%v", tc.args)
	}
	// On the command line a mistake is a usage error, before any device.
	var out, errb bytes.Buffer
	assert.Equal(t, exitUsage, run([]string{"serve", "--route", "nowhere"}, &out, &errb))
	assert.Contains(t, errb.String(), `--route "nowhere"`)
}
