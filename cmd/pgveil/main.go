// Command pgveil keeps an anonymised copy of a production PostgreSQL
// database up to date, for analytics tools that must never see raw
// personal data.
//
// This file holds the command table, flag parsing and exit codes; the work
// itself lives in the rules, transform and replicate packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
)

// Exit codes.
const (
	exitOK       = 0
	exitProblems = 1 // the command ran and found problems (or failed)
	exitUsage    = 2 // bad command line
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise it comes from the module and VCS information in the binary.
var version = ""

// env is what a command may read from the outside world; tests fake it.
type env struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

type command struct {
	name    string
	summary string
	usage   string // the arguments after the command name
	run     func(ctx context.Context, e *env, args []string) int
}

func commands() []command {
	return []command{
		{name: "demo", summary: "see pgveil work: two throwaway clusters, a seeded SaaS schema, live traffic, masked replica", usage: "[--scale 100000] [--duration 60s] [--dir DIR] [--keep]", run: runDemo},
		{name: "run", summary: "replicate production into the analytics database, masked, until stopped", usage: "-c FILE [flags]", run: runRun},
		{name: "validate", summary: "check a rules file (and, unless --offline, against the source) and print every problem", usage: "-c FILE [--offline]", run: runValidate},
		{name: "preview", summary: "show masked sample rows of one table; writes nothing", usage: "-c FILE TABLE [-n 5]", run: runPreview},
		{name: "status", summary: "show the slot, the lag, the replicated tables and schema drift", usage: "-c FILE [--fast] [--json]", run: runStatus},
		{name: "verify", summary: "compare the replica with the re-masked source; prints counts, never values", usage: "-c FILE [--table TABLE] [--sample N] [--wait 60s]", run: runVerify},
		{name: "resync", summary: "after the slot was lost: drop it and the checkpoint, so that the next start copies every table again", usage: "-c FILE [--force]", run: runResync},
		{name: "setup-sql", summary: "print the SQL that creates least-privilege roles for pgveil and the readers; never connects", usage: "-c FILE [--part source|target|all] [--source-role pgveil] [--target-role pgveil] [--reader-timeout 5min] [--close-other-databases]", run: runSetupSQL},
		{name: "healthcheck", summary: "ask a running pgveil's /healthz whether it is healthy (exit 0) or not (exit 1); for container health checks", usage: "[--timeout 3s] [URL (default " + defaultHealthURL + ")]", run: runHealthcheck},
		{name: "scan", summary: "propose masking rules: read the source catalog, sample values, write a rules file with a reason for each rule; never prints values", usage: "--source DSN [--sample 200] [-o pgveil.yaml] [--schema public ...]", run: runScan},
		{name: "report", summary: "privacy report of the replica: columns kept raw, quasi-identifiers, and the k-anonymity of sets of them; prints names and counts, never values", usage: "-c FILE [--qi TABLE=col1,col2 ...] [--k 5] [--fail-under] [--json] [--timeout 5m]", run: runReport},
		{name: "try", summary: "mask sample values with one rule", usage: "--secret-env VAR [--type TYPE] RULE VALUE...", run: runTry},
		{name: "version", summary: "print the version", usage: "", run: runVersion},
		{name: "help", summary: "list the commands, or explain one", usage: "[COMMAND]", run: nil},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &env{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run dispatches to a command and returns the process exit code.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			usage(e.stdout)
			return exitOK
		}
		c := find(rest[0])
		if c == nil || c.run == nil {
			fmt.Fprintf(e.stderr, "pgveil: unknown command %s\n\n", shownArg(rest[0]))
			usage(e.stderr)
			return exitUsage
		}
		return c.run(ctx, e, []string{"-h"})
	case "-version", "--version":
		name = "version"
	}
	c := find(name)
	if c == nil || c.run == nil {
		fmt.Fprintf(e.stderr, "pgveil: unknown command %s\n\n", shownArg(name))
		usage(e.stderr)
		return exitUsage
	}
	return c.run(ctx, e, rest)
}

func find(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return &c
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "pgveil keeps an anonymised copy of a PostgreSQL database for analytics.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: pgveil COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "pgveil help COMMAND" for a command's flags.`)
}

// newFlags returns a flag set that reports errors on e.stderr with the
// command's usage line.
func newFlags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("pgveil "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	c := find(name)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: pgveil %s %s\n\n%s.\n\nFlags:\n", name, c.usage, upperFirst(c.summary))
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; it returns an exit code when the command must
// stop (help asked: 0, bad flags: 2) and -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	return -1
}

// parseNoArgs is parseFlags for a command that takes no arguments.
func parseNoArgs(e *env, fs *flag.FlagSet, args []string) int {
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "%s: unexpected argument %s\n", fs.Name(), shownArg(fs.Arg(0)))
		fs.Usage()
		return exitUsage
	}
	return -1
}

// shownArg is an argument pgveil did not expect, as its errors show it:
// quoted, unless it may hold a password (a DSN given where none is
// expected, or a word of a keyword DSN the shell split), which is never
// shown: errors end up in logs.
func shownArg(arg string) string {
	if dsnHasPassword(arg) || strings.Contains(strings.ToLower(arg), "password") {
		return "(not shown: it holds a password, which other users of this machine can read in the process list; quote a DSN, and pass it in the environment)"
	}
	return fmt.Sprintf("%q", arg)
}

// configFlag defines -c and --config, the rules file.
func configFlag(fs *flag.FlagSet) *string {
	file := new(string)
	fs.StringVar(file, "c", "pgveil.yaml", "the rules `file`")
	fs.StringVar(file, "config", "pgveil.yaml", "the rules `file` (same as -c)")
	return file
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func runVersion(_ context.Context, e *env, args []string) int {
	fs := newFlags(e, "version")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	fmt.Fprintln(e.stdout, "pgveil", buildVersion())
	return exitOK
}

func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" && (v == "" || v == "(devel)") {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "devel-" + rev + dirty + " " + info.GoVersion
	}
	return v + " " + info.GoVersion
}
