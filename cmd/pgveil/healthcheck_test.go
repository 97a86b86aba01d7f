package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	var healthy atomic.Bool // written here, read by the server's goroutines
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("the source has not been heard from for 2m0s\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	check := func(args ...string) (int, string, string) {
		return pgveil(t, nil, append([]string{"healthcheck"}, args...)...)
	}
	// An answer is expected: a minute, not the default 3 seconds, for a
	// loaded machine.
	if code, out, _ := check("--timeout", "1m", srv.URL+"/healthz"); code != exitOK || !strings.Contains(out, "ok") {
		t.Errorf("healthy: exit %d, %q", code, out)
	}
	healthy.Store(false)
	if code, _, errs := check("--timeout", "1m", srv.URL+"/healthz"); code != exitProblems || !strings.Contains(errs, "503") || !strings.Contains(errs, "not been heard") {
		t.Errorf("unhealthy: exit %d, %q", code, errs)
	}
	srv.Close()
	if code, _, errs := check("--timeout", "1s", srv.URL+"/healthz"); code != exitProblems || errs == "" {
		t.Errorf("nothing listening: exit %d, %q", code, errs)
	}
	for _, bad := range [][]string{{"ftp://x/healthz"}, {"not a url"}, {"http://a/", "http://b/"}} {
		if code, _, _ := check(bad...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", bad, code, exitUsage)
		}
	}
	// A password in the URL is not printed.
	if _, _, errs := check("--timeout", "1s", "http://u:s3cret@127.0.0.1:1/healthz"); strings.Contains(errs, "s3cret") {
		t.Errorf("the password was printed: %q", errs)
	}
}
