package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// defaultHealthURL is /healthz on the default --listen address of run.
const defaultHealthURL = "http://127.0.0.1:9187/healthz"

// runHealthcheck asks a running pgveil's /healthz whether it is healthy:
// exit 0 when it answers 200, 1 otherwise. It is for container health
// checks, where the image has no curl.
func runHealthcheck(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "healthcheck")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	target := defaultHealthURL
	switch fs.NArg() {
	case 0:
	case 1:
		target = fs.Arg(0)
	default:
		fmt.Fprintf(e.stderr, "pgveil healthcheck: unexpected argument %s\n", shownArg(fs.Arg(1)))
		fs.Usage()
		return exitUsage
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(e.stderr, "pgveil healthcheck: %s is not an http(s) URL\n", shownArg(target))
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil healthcheck: %v\n", err)
		return exitProblems
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil healthcheck: %s: %v\n", u.Redacted(), err)
		return exitProblems
	}
	defer resp.Body.Close()
	// /healthz says why in a short sentence; read no more than a line's worth.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	reason := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(e.stderr, "pgveil healthcheck: unhealthy (%s): %s\n", resp.Status, reason)
		return exitProblems
	}
	fmt.Fprintln(e.stdout, "healthy:", reason)
	return exitOK
}
