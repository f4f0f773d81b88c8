// Command ustack runs the ustack userspace TCP/IP stack on a Linux TUN device:
// `ustack serve` puts echo, discard, chargen and HTTP services on an address no kernel
// socket owns, and `ustack dial` is a netcat through the stack.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// exitUsage is the exit status for command-line mistakes.
const exitUsage = 2

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands []command

func init() {
	commands = []command{
		{"serve", "run echo, discard, chargen and HTTP services on a userspace address behind a TUN", runServe},
		{"dial", "connect through ustack to HOST:PORT and relay stdin/stdout (a netcat)", runDial},
		{"ss", "list a running serve's TCP connections like ss -tni, or its UDP sockets with -u (from its --admin socket)", runSS},
		{"drill", "run packetdrill-dialect scripts against ustack, gVisor and Linux", runDrill},
		{"bench", "measure ustack against gVisor's netstack and the kernel, each in its own namespace", runBench},
		{"path", "run an emulated WAN path (delay, rate, queue, loss) between two network namespaces", runPath},
		{"plot", "draw a --trace file: time-sequence diagram, cwnd/ssthresh and RTT (PNG or SVG)", runPlot},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: ustack COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'ustack COMMAND --help' for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "ustack: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

// parseFlags parses args into fs and turns the outcome into an exit status:
// -1 to go on, 0 after --help, exitUsage on a mistake (already explained).
func parseFlags(fs *flag.FlagSet, args []string) int {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return -1
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		return exitUsage
	}
}
