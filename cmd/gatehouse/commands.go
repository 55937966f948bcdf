package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"gatehouse/internal/upgrade"
)

// command is one subcommand: its help text, its own flags, and what it
// does once they are parsed. Adding a subcommand is adding an entry to
// commands; help, `help NAME`, `NAME -h` and errors follow from it.
type command struct {
	name    string
	args    string // synopsis after the name, e.g. "[-c FILE]"
	summary string // one line, for `gatehouse help`
	about   string // a paragraph, for `gatehouse help NAME`
	// setup defines the command's flags on fs and returns what runs after
	// they are parsed; it is called once per invocation.
	setup func(fs *flag.FlagSet, stdout, stderr io.Writer) func() int
}

// commands are gatehouse's subcommands, in the order help lists them.
func commands() []command {
	return []command{
		{
			name: "run", args: "[-c FILE]",
			summary: "serve with a config file",
			about: "Serve with a config file until SIGTERM or SIGINT (graceful shutdown).\n" +
				"SIGHUP or an edit of the file reloads it; a config that does not\n" +
				"validate keeps the running one.",
			setup: func(fs *flag.FlagSet, stdout, stderr io.Writer) func() int {
				cfg := fs.String("c", "gatehouse.yaml", "config `file`")
				var up upgradeFlags
				fs.StringVar(&up.pidFile, "pid-file", "", "write this process's PID to `file` (zero-downtime upgrades follow it)")
				fs.DurationVar(&up.timeout, "upgrade-timeout", upgrade.DefaultTimeout, "on SIGUSR2, how long the new process has to become ready")
				return func() int { return runConfig(*cfg, &up, stdout, stderr) }
			},
		},
		{
			name: "upgrade", args: "-pid-file FILE [-wait DURATION]",
			summary: "zero-downtime binary upgrade of the running process",
			about: "Send SIGUSR2 to the process named in the PID file: it starts the binary\n" +
				"now on disk with the same arguments, hands it its listening sockets, and\n" +
				"drains once the new process serves (docs/operations.md). With -wait, wait\n" +
				"until the PID file names the new process.",
			setup: func(fs *flag.FlagSet, stdout, stderr io.Writer) func() int {
				pidFile := fs.String("pid-file", "", "the `file` naming the serving process's PID")
				wait := fs.Duration("wait", 0, "wait this long for the new process to serve")
				return func() int { return upgradeCommand(*pidFile, *wait, stdout, stderr) }
			},
		},
		{
			name: "healthcheck", args: "[-c FILE] [-url URL] [-timeout D]",
			summary: "GET the admin listener's /healthz; exit 0 if it answers 200",
			about: "GET /healthz on the admin listener named in the config (or -url), for a\n" +
				"container's HEALTHCHECK; exit status 0 on 200, 1 otherwise.",
			setup: func(fs *flag.FlagSet, stdout, stderr io.Writer) func() int {
				cfg := fs.String("c", "gatehouse.yaml", "config `file`")
				hcURL := fs.String("url", "", "`URL` to GET instead of the config's admin listener /healthz")
				hcTimeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
				return func() int { return healthcheck(*cfg, *hcURL, *hcTimeout, stdout, stderr) }
			},
		},
		{
			name: "validate", args: "[-c FILE]",
			summary: "check a config file; prints every error, exit 1 if any",
			about: "Load, validate and compile a config file without serving it. Every\n" +
				"error is printed as file:line:col: key: message; exit status 1 if any.",
			setup: func(fs *flag.FlagSet, stdout, stderr io.Writer) func() int {
				cfg := fs.String("c", "gatehouse.yaml", "config `file`")
				return func() int { return validate(*cfg, stdout, stderr) }
			},
		},
		{
			name: "demo", args: "[-listen ADDR]",
			summary: "the shipped routes with built-in echo upstreams",
			about: "Serve the shipped route table with a built-in echo server for each\n" +
				"upstream, and /admin/ behind browser login against a built-in\n" +
				"development issuer (not for production). Prints URLs to try.",
			setup: func(fs *flag.FlagSet, stdout, stderr io.Writer) func() int {
				listen := fs.String("listen", "127.0.0.1:6188", "listen `address`")
				return func() int { return serveDemo(*listen, stdout, stderr) }
			},
		},
		{
			name: "version", summary: "print the version",
			about: "Print the version: the one set at build time (-ldflags \"-X main.version=…\",\n" +
				"as the Makefile does), else the module version (go install …@v1.2.3),\n" +
				"with the VCS revision and time when the build recorded them.",
			setup: func(fs *flag.FlagSet, stdout, stderr io.Writer) func() int {
				return func() int { fmt.Fprintln(stdout, "gatehouse", versionString()); return 0 }
			},
		},
	}
}

// dispatch runs the subcommand args[0] with the rest of args. Help asked
// for goes to stdout (exit 0); usage errors go to stderr with exit 2.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printOverview(stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return help(rest, stdout, stderr)
	case "-v", "-version", "--version":
		name = "version"
	}
	c, ok := lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\nRun 'gatehouse help' for the list of commands.\n", name)
		return 2
	}
	fs := flag.NewFlagSet("gatehouse "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are printed below, once
	runCmd := c.setup(fs, stdout, stderr)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, c)
			return 0
		}
		fmt.Fprintf(stderr, "gatehouse %s: %v\n", c.name, err)
		printHelp(stderr, c)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse %s: unexpected argument %q\n", c.name, fs.Arg(0))
		printHelp(stderr, c)
		return 2
	}
	return runCmd()
}

// help serves `gatehouse help [COMMAND]`.
func help(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		printOverview(stdout)
		return 0
	case 1:
		if c, ok := lookup(args[0]); ok {
			printHelp(stdout, c)
			return 0
		}
		fmt.Fprintf(stderr, "gatehouse help: unknown command %q\nRun 'gatehouse help' for the list of commands.\n", args[0])
	default:
		fmt.Fprintln(stderr, "usage: gatehouse help [COMMAND]")
	}
	return 2
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// printOverview lists the subcommands, one line each.
func printOverview(w io.Writer) {
	var b strings.Builder
	b.WriteString("Gatehouse is a reverse proxy and API gateway.\n\nusage: gatehouse <command> [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	b.WriteString("  help      show help for a command\n\nRun 'gatehouse help <command>' or 'gatehouse <command> -h' for its flags.\n")
	io.WriteString(w, b.String())
}

// printHelp is one command's help: synopsis, description and its flags.
func printHelp(w io.Writer, c command) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.setup(fs, io.Discard, io.Discard)
	var b strings.Builder
	b.WriteString("usage: gatehouse " + c.name)
	if c.args != "" {
		b.WriteString(" " + c.args)
	}
	b.WriteString("\n\n" + c.about + "\n")
	if hasFlags(fs) {
		b.WriteString("\nflags:\n")
		fs.SetOutput(&b)
		fs.PrintDefaults()
	}
	io.WriteString(w, b.String())
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}
