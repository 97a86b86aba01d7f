package main

// A rerun of issue 17, finding 10 (scan and the source's password), by
// someone who did not write the fix: against a server that really asks for
// the password, in every form a DSN can carry one, on success and on each
// kind of failure, and with the DSN where scan does not expect it.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/internal/pgtest"
)

// passwordRole creates a login role with password pw that the shared
// production cluster authenticates by password (scram-sha-256; every
// other role is trusted), able to read everything, and returns its name.
func passwordRole(t *testing.T, dsn, pw string) string {
	t.Helper()
	ctx := context.Background()
	admin := pgtest.Connect(t, dsn)
	role := "r17scan_" + admin.Config().Database
	var hba string
	if err := admin.QueryRow(ctx, `SHOW hba_file`).Scan(&hba); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN PASSWORD ` + quoteLit(pw) + ` IN ROLE pg_read_all_data`,
		`CREATE TABLE people (id int PRIMARY KEY, email text, full_name text)`,
		`INSERT INTO people SELECT g, 'p' || g || '@mail.example', 'Name ' || g FROM generate_series(1, 20) g`,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	line := "host all " + role + " 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(hba, append([]byte(line), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	reload := func() {
		if _, err := admin.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if err := os.WriteFile(hba, old, 0o600); err != nil {
			t.Error(err)
		}
		if c, err := pgx.Connect(ctx, dsn); err == nil {
			c.Exec(ctx, `SELECT pg_reload_conf()`)
			c.Exec(ctx, `DROP ROLE IF EXISTS `+role)
			c.Close(ctx)
		}
	})
	reload()
	// Wait until the server asks for the password: a wrong one fails.
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = role, "wrong"
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := pgx.ConnectConfig(ctx, cfg)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "28P01" {
			return role
		}
		if c != nil {
			c.Close(ctx)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server does not ask %s for a password: %v", role, err)
		}
		// The postmaster rereads pg_hba.conf on SIGHUP, asynchronously.
		time.Sleep(20 * time.Millisecond)
	}
}

func quoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TestRerun17ScanPassword: pgveil scan never shows the source's password,
// in any form a DSN can hold it (a URL's user information, percent-encoded
// or not, its password parameter, a keyword DSN's password, quoted, with
// spaces), whether the password is right (stdout, stderr, the written
// rules file) or wrong, the DSN malformed, or the DSN not where scan
// expects it (an argument after --source, an unquoted keyword DSN split
// by the shell, a DSN given without --source, or as the command). A
// password given on the command line is warned about; one from
// SOURCE_DSN is not.
func TestRerun17ScanPassword(t *testing.T) {
	dsn := clusters.Source.NewDB(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	const pw = "p@ss/w:rd%' r17-S3CR3T"
	role := passwordRole(t, dsn, pw)
	addr := fmt.Sprintf("127.0.0.1:%d", cfg.Port)
	db := cfg.Database
	userinfo := url.UserPassword(role, pw).String()
	forms := []string{pw, url.QueryEscape(pw), url.PathEscape(pw), userinfo, "S3CR3T"}
	kv := func(pw string) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s sslmode=disable password = '%s'", cfg.Port, db, role,
			strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw))
	}
	wrong := strings.ReplaceAll(pw, "S3CR3T", "WR0NG-S3CR3T")
	const warning = "holds a password, which other users of this machine can read in the process list"

	check := func(t *testing.T, what string, outputs ...string) {
		t.Helper()
		for _, o := range outputs {
			for _, f := range forms {
				if strings.Contains(o, f) {
					t.Errorf("%s: the password (as %q) is in the output:\n%s", what, f, o)
					return
				}
			}
		}
	}

	t.Run("right password", func(t *testing.T) {
		for _, c := range []struct {
			name string
			env  map[string]string
			args []string
			warn bool
		}{
			{"URL", nil, []string{"--source", "postgres://" + userinfo + "@" + addr + "/" + db + "?sslmode=disable"}, true},
			{"URL parameter", nil, []string{"--source", "postgres://" + role + "@" + addr + "/" + db + "?sslmode=disable&password=" + url.PathEscape(pw)}, true},
			{"keyword DSN", nil, []string{"--source", kv(pw)}, true},
			{"SOURCE_DSN", map[string]string{"SOURCE_DSN": kv(pw)}, nil, false},
		} {
			t.Run(c.name, func(t *testing.T) {
				file := filepath.Join(t.TempDir(), "scan.yaml")
				code, out, errOut := pgveil(t, c.env, append([]string{"scan", "--sample", "5", "-o", file}, c.args...)...)
				if code != exitOK {
					t.Fatalf("scan: exit %d: %s", code, errOut)
				}
				data, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(data), "\n  people:\n") {
					t.Errorf("the scan did not read the source:\n%s", data)
				}
				check(t, c.name, out, errOut, string(data))
				if strings.Contains(errOut, warning) != c.warn {
					t.Errorf("%s: warning %v, want %v: %s", c.name, !c.warn, c.warn, errOut)
				}
			})
		}
	})

	t.Run("failures", func(t *testing.T) {
		wrongForms := []string{wrong, url.QueryEscape(wrong), url.PathEscape(wrong), "WR0NG"}
		for _, c := range []struct {
			name string
			env  map[string]string
			args []string
			want string // in stderr
		}{
			{"wrong password, URL", nil, []string{"scan", "--source", "postgres://" + url.UserPassword(role, wrong).String() + "@" + addr + "/" + db + "?sslmode=disable"}, "password authentication failed"},
			{"wrong password, URL parameter", nil, []string{"scan", "--source", "postgres://" + role + "@" + addr + "/" + db + "?sslmode=disable&password=" + url.PathEscape(wrong)}, "password authentication failed"},
			{"wrong password, keyword DSN", nil, []string{"scan", "--source", kv(wrong)}, "password authentication failed"},
			{"wrong password, SOURCE_DSN", map[string]string{"SOURCE_DSN": kv(wrong)}, []string{"scan"}, "password authentication failed"},
			{"malformed URL", nil, []string{"scan", "--source", "postgres://" + url.UserPassword(role, wrong).String() + "@" + addr + "/" + db + "?sslmode=bogus"}, "cannot parse"},
			{"malformed keyword DSN", nil, []string{"scan", "--source", kv(wrong) + " sslmode=bogus"}, "cannot parse"},
			{"unquoted keyword DSN", nil, []string{"scan", "--source", "host=127.0.0.1", "password=" + wrong, "dbname=" + db}, "unexpected argument"},
			{"argument after --source", nil, []string{"scan", "--source", "host=127.0.0.1", "postgres://" + url.UserPassword(role, wrong).String() + "@" + addr}, "unexpected argument"},
			{"DSN without --source", nil, []string{"scan", "postgres://" + url.UserPassword(role, wrong).String() + "@" + addr + "/" + db}, "unexpected argument"},
			{"DSN as the command", nil, []string{"postgres://" + url.UserPassword(role, wrong).String() + "@" + addr + "/" + db}, "unknown command"},
		} {
			t.Run(c.name, func(t *testing.T) {
				code, out, errOut := pgveil(t, c.env, c.args...)
				if code == exitOK || !strings.Contains(errOut, c.want) {
					t.Errorf("exit %d, stderr %q: want a failure saying %q", code, errOut, c.want)
				}
				for _, o := range []string{out, errOut} {
					for _, f := range wrongForms {
						if strings.Contains(o, f) {
							t.Errorf("the password (as %q) is in the output:\n%s", f, o)
						}
					}
				}
			})
		}
	})
}
