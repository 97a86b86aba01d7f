package deploy

import (
	"cmp"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"pgveil/replicate"
	"pgveil/replicate/metrics"
)

// Service names docker-compose.yml uses; docs/deploy.md refers to them.
const (
	svcProduction  = "production"
	svcAnalytics   = "analytics"
	svcPgveil      = "pgveil"
	svcMetabase    = "metabase"
	svcMetabaseApp = "metabase-app"

	proxyImage   = "quay.io/oauth2-proxy/oauth2-proxy"
	proxyProfile = "proxy"
	loopback     = "127.0.0.1"
)

// repo holds the deployment files as text, and the metric names pgveil
// exports. The checks read nothing else, so a test can hand them a broken
// copy.
type repo struct {
	compose      string // docker-compose.yml
	envExample   string // .env.example
	dockerfile   string // Dockerfile
	dockerignore string // .dockerignore
	ci           string // .ci/run
	unit         string // examples/deploy/pgveil.service
	alerts       string // examples/deploy/alerts.yml
	rules        string // examples/saas/pgveil.yaml
	prodInit     string // examples/deploy/production-init.sh
	analyticInit string // examples/deploy/analytics-init.sh

	metrics map[string]bool
}

func loadRepo(t *testing.T) *repo {
	t.Helper()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(name)))
		if err != nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		return string(b)
	}
	return &repo{
		compose:      read("docker-compose.yml"),
		envExample:   read(".env.example"),
		dockerfile:   read("Dockerfile"),
		dockerignore: read(".dockerignore"),
		ci:           read(".ci/run"),
		unit:         read("examples/deploy/pgveil.service"),
		alerts:       read("examples/deploy/alerts.yml"),
		rules:        read("examples/saas/pgveil.yaml"),
		prodInit:     read("examples/deploy/production-init.sh"),
		analyticInit: read("examples/deploy/analytics-init.sh"),
		metrics:      exportedMetrics(t),
	}
}

// check is one property of the deployment files. It returns every problem
// it finds, each a sentence naming the file.
type check struct {
	name string
	run  func(r *repo) []string
}

func checks() []check {
	return []check{
		{"networks", checkNetworks},
		{"metabase-environment", checkMetabaseEnvironment},
		{"healthchecks", checkHealthchecks},
		{"depends-on", checkDependsOn},
		{"variables", checkVariables},
		{"ports", checkPorts},
		{"proxy", checkProxy},
		{"pgveil-service", checkPgveilService},
		{"init-scripts", checkInitScripts},
		{"dockerfile", checkDockerfile},
		{"dockerignore", checkDockerignore},
		{"alerts", checkAlerts},
		{"systemd-unit", checkUnit},
	}
}

func TestDeploymentFiles(t *testing.T) {
	r := loadRepo(t)
	for _, c := range checks() {
		t.Run(c.name, func(t *testing.T) {
			for _, p := range c.run(r) {
				t.Error(p)
			}
		})
	}
}

// TestChecksFail breaks each property once, in a copy of the files, and
// expects its check to say so.
func TestChecksFail(t *testing.T) {
	base := loadRepo(t)
	byName := map[string]func(*repo) []string{}
	for _, c := range checks() {
		byName[c.name] = c.run
	}
	// A mutation replaces every old in one file with new.
	type mutation struct {
		check    string
		file     func(r *repo) *string
		old, new string
	}
	compose := func(r *repo) *string { return &r.compose }
	tests := map[string]mutation{
		"metabase joins prod": {"networks", compose,
			"networks: [analytics, metabase-app, proxy]", "networks: [analytics, metabase-app, proxy, prod]"},
		"analytics joins prod": {"networks", compose,
			"    networks: [analytics]\n", "    networks: [analytics, prod]\n"},
		"a service on the default network": {"networks", compose,
			"    networks: [metabase-app]\n", ""},
		"metabase gets the source DSN": {"metabase-environment", compose,
			"      MB_DB_TYPE: postgres\n", "      MB_DB_TYPE: postgres\n      PROD: \"${PGVEIL_SOURCE_PASSWORD:?x}\"\n"},
		"metabase names the production host": {"metabase-environment", compose,
			"MB_DB_HOST: metabase-app", "MB_DB_HOST: production"},
		"metabase app DB is analytics": {"metabase-environment", compose,
			"MB_DB_HOST: metabase-app", "MB_DB_HOST: analytics"},
		"metabase reads the whole .env": {"metabase-environment", compose,
			"  metabase:\n    image:", "  metabase:\n    env_file: .env\n    image:"},
		"postgres without pg_isready": {"healthchecks", compose,
			`pg_isready -h 127.0.0.1 -U metabase -d metabase`, `true`},
		"pgveil healthcheck not on /healthz": {"healthchecks", compose,
			`"http://127.0.0.1:9187/healthz"`, `"http://127.0.0.1:9187/metrics"`},
		"pgveil starts before production is healthy": {"depends-on", compose,
			"      production:\n        condition: service_healthy", "      production:\n        condition: service_started"},
		"metabase does not wait for its app DB": {"depends-on", compose,
			"      metabase-app:\n        condition: service_healthy\n", ""},
		"a variable missing from .env.example": {"variables", func(r *repo) *string { return &r.envExample },
			"METABASE_RO_PASSWORD=\n", ""},
		"a variable only in .env.example": {"variables", func(r *repo) *string { return &r.envExample },
			"PRODUCTION_DB=app\n", "PRODUCTION_DB=app\nUNUSED_SETTING=1\n"},
		"a secret with a default": {"variables", compose,
			"${PGVEIL_SECRET:?set PGVEIL_SECRET in .env: openssl rand -hex 32}", "${PGVEIL_SECRET:-changeme}"},
		"a secret filled in .env.example": {"variables", func(r *repo) *string { return &r.envExample },
			"PGVEIL_SECRET=\n", "PGVEIL_SECRET=0123456789abcdef0123456789abcdef\n"},
		"a required variable in the proxy profile": {"variables", compose,
			`"${PROXY_CLIENT_SECRET:-}"`, `"${PROXY_CLIENT_SECRET:?required}"`},
		"metabase on every interface": {"ports", compose,
			`"127.0.0.1:3000:3000"`, `"3000:3000"`},
		"analytics on a public address": {"ports", compose,
			`"127.0.0.1:5433:5432"`, `"0.0.0.0:5433:5432"`},
		"proxy outside its profile": {"proxy", compose,
			"    profiles: [proxy]\n", ""},
		"public routes open by default": {"proxy", compose,
			`"${PUBLIC_DASHBOARD_ROUTES:-}"`, `"${PUBLIC_DASHBOARD_ROUTES:-^/public/}"`},
		"public routes filled in .env.example": {"proxy", func(r *repo) *string { return &r.envExample },
			"\nPUBLIC_DASHBOARD_ROUTES=\n", "\nPUBLIC_DASHBOARD_ROUTES=^/public/\n"},
		"proxy trusts IPs": {"proxy", compose,
			`      OAUTH2_PROXY_COOKIE_SECURE: "true"`, `      OAUTH2_PROXY_TRUSTED_IPS: "0.0.0.0/0"`},
		"pgveil without its secret": {"pgveil-service", compose,
			`      PGVEIL_SECRET: "${PGVEIL_SECRET:?set PGVEIL_SECRET in .env: openssl rand -hex 32}"` + "\n", ""},
		"rules mounted writable": {"pgveil-service", compose,
			"./examples/saas:/etc/pgveil:ro", "./examples/saas:/etc/pgveil"},
		"production without logical decoding": {"init-scripts", compose,
			"-c wal_level=logical ", ""},
		"init script misses a replicated table": {"init-scripts", func(r *repo) *string { return &r.prodInit },
			" support_tickets ", " "},
		"reader role not created": {"init-scripts", func(r *repo) *string { return &r.analyticInit },
			"CREATE ROLE metabase_ro", "CREATE ROLE metabase_reader"},
		"writer cannot create tenant roles": {"init-scripts", func(r *repo) *string { return &r.analyticInit },
			"CREATE ROLE pgveil LOGIN CREATEROLE", "CREATE ROLE pgveil LOGIN"},
		"image runs as root": {"dockerfile", func(r *repo) *string { return &r.dockerfile },
			"USER 65532:65532", "USER root"},
		"image without a user": {"dockerfile", func(r *repo) *string { return &r.dockerfile },
			"USER 65532:65532\n", ""},
		"image built without -trimpath": {"dockerfile", func(r *repo) *string { return &r.dockerfile },
			"go build -trimpath ", "go build "},
		"image built with other VCS stamping": {"dockerfile", func(r *repo) *string { return &r.dockerfile },
			"-buildvcs=true", "-buildvcs=false"},
		"final stage is the Go image": {"dockerfile", func(r *repo) *string { return &r.dockerfile },
			"FROM gcr.io/distroless/static-debian12:nonroot", "FROM golang:1.26"},
		".git left out of the context": {"dockerignore", func(r *repo) *string { return &r.dockerignore },
			"# Secrets: never in a build context.\n", ".git\n"},
		".env in the context": {"dockerignore", func(r *repo) *string { return &r.dockerignore },
			".env\n**/.env\n**/*.env\n", ""},
		"alert on a metric pgveil does not export": {"alerts", func(r *repo) *string { return &r.alerts },
			"pgveil_lag_seconds > 300", "pgveil_replication_lag_seconds > 300"},
		"alert rules that do not parse": {"alerts", func(r *repo) *string { return &r.alerts },
			"groups:\n", "groups: [\n"},
		"alert with an unknown key": {"alerts", func(r *repo) *string { return &r.alerts },
			"        for: 10m\n", "        for: 10m\n        four: 10m\n"},
		"no alert on retained WAL": {"alerts", func(r *repo) *string { return &r.alerts },
			"expr: pgveil_slot_retained_bytes", "expr: pgveil_slot_active == 0 and pgveil_slot_exists"},
		"unit without NoNewPrivileges": {"systemd-unit", func(r *repo) *string { return &r.unit },
			"NoNewPrivileges=yes", "NoNewPrivileges=no"},
		"unit runs as root": {"systemd-unit", func(r *repo) *string { return &r.unit },
			"User=pgveil", "User=root"},
		"unit listens on every interface": {"systemd-unit", func(r *repo) *string { return &r.unit },
			"--listen 127.0.0.1:9187", "--listen :9187"},
	}
	for name, m := range tests {
		t.Run(name, func(t *testing.T) {
			run := byName[m.check]
			if run == nil {
				t.Fatalf("no check %q", m.check)
			}
			r := *base
			f := m.file(&r)
			if !strings.Contains(*f, m.old) {
				t.Fatalf("the file no longer holds %q: update the mutation", m.old)
			}
			*f = strings.ReplaceAll(*f, m.old, m.new)
			if ps := run(&r); len(ps) == 0 {
				t.Errorf("check %s found nothing wrong", m.check)
			} else {
				t.Logf("check %s: %s", m.check, ps[0])
			}
		})
	}
}

// ---------------------------------------------------------------------------
// docker-compose.yml

type composeFile struct {
	Services map[string]*service `yaml:"services"`
	Networks map[string]*struct {
		Internal bool `yaml:"internal"`
	} `yaml:"networks"`
}

type service struct {
	Image       string        `yaml:"image"`
	Build       any           `yaml:"build"`
	Command     stringOrList  `yaml:"command"`
	Environment environment   `yaml:"environment"`
	EnvFile     any           `yaml:"env_file"`
	Networks    names         `yaml:"networks"`
	NetworkMode string        `yaml:"network_mode"`
	Ports       []portBinding `yaml:"ports"`
	DependsOn   dependsOn     `yaml:"depends_on"`
	Healthcheck *struct {
		Test    stringOrList `yaml:"test"`
		Disable bool         `yaml:"disable"`
	} `yaml:"healthcheck"`
	Profiles []string `yaml:"profiles"`
	Volumes  []string `yaml:"volumes"`
}

// stringOrList is a command or a healthcheck test: a string or a list,
// kept as one string.
type stringOrList string

func (s *stringOrList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = stringOrList(n.Value)
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*s = stringOrList(strings.Join(l, " "))
	return nil
}

// environment is a service's environment: a map, or a list of KEY=VALUE.
type environment map[string]string

func (e *environment) UnmarshalYAML(n *yaml.Node) error {
	*e = environment{}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			(*e)[n.Content[i].Value] = n.Content[i+1].Value
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			k, v, _ := strings.Cut(item.Value, "=")
			(*e)[k] = v
		}
	default:
		return fmt.Errorf("line %d: environment is neither a map nor a list", n.Line)
	}
	return nil
}

// names is a service's networks: a list, or a map of name to settings.
type names []string

func (ns *names) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*ns = l
	case yaml.MappingNode:
		for i := 0; i < len(n.Content); i += 2 {
			*ns = append(*ns, n.Content[i].Value)
		}
	default:
		return fmt.Errorf("line %d: networks is neither a list nor a map", n.Line)
	}
	return nil
}

// dependsOn maps a service to the condition it waits for.
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, item := range n.Content {
			(*d)[item.Value] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := n.Decode(&m); err != nil {
			return err
		}
		for k, v := range m {
			(*d)[k] = cmp.Or(v.Condition, "service_started")
		}
	default:
		return fmt.Errorf("line %d: depends_on is neither a list nor a map", n.Line)
	}
	return nil
}

// portBinding is one published port, from the short ("IP:HOST:CONTAINER")
// or the long syntax.
type portBinding struct {
	HostIP, Published, Target string
}

func (p *portBinding) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var l struct {
			HostIP    string `yaml:"host_ip"`
			Published string `yaml:"published"`
			Target    string `yaml:"target"`
		}
		if err := n.Decode(&l); err != nil {
			return err
		}
		*p = portBinding(l)
		return nil
	}
	s, _, _ := strings.Cut(n.Value, "/") // 80/tcp
	if strings.HasPrefix(s, "[") {       // [::1]:80:80
		ip, rest, ok := strings.Cut(s[1:], "]:")
		if !ok {
			return fmt.Errorf("line %d: port %q", n.Line, n.Value)
		}
		p.HostIP = ip
		p.Published, p.Target, _ = strings.Cut(rest, ":")
		return nil
	}
	switch parts := strings.Split(s, ":"); len(parts) {
	case 1:
		p.Target = parts[0]
	case 2:
		p.Published, p.Target = parts[0], parts[1]
	case 3:
		p.HostIP, p.Published, p.Target = parts[0], parts[1], parts[2]
	default:
		return fmt.Errorf("line %d: port %q", n.Line, n.Value)
	}
	return nil
}

// parseCompose decodes docker-compose.yml, and the root of its YAML tree
// for the variable references.
func parseCompose(text string) (*composeFile, *yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		return nil, nil, fmt.Errorf("docker-compose.yml: %w", err)
	}
	var c composeFile
	if err := root.Decode(&c); err != nil {
		return nil, nil, fmt.Errorf("docker-compose.yml: %w", err)
	}
	if len(c.Services) == 0 {
		return nil, nil, fmt.Errorf("docker-compose.yml: no services")
	}
	return &c, &root, nil
}

// withCompose runs f on the parsed compose file, or reports why it does not
// parse.
func withCompose(r *repo, f func(c *composeFile, root *yaml.Node) []string) []string {
	c, root, err := parseCompose(r.compose)
	if err != nil {
		return []string{err.Error()}
	}
	return f(c, root)
}

// need returns the named service, or adds a problem.
func (c *composeFile) need(name string, ps *[]string) *service {
	s := c.Services[name]
	if s == nil {
		*ps = append(*ps, fmt.Sprintf("docker-compose.yml: no service %q", name))
	}
	return s
}

// members lists the services on network n.
func (c *composeFile) members(n string) []string {
	var out []string
	for name, s := range c.Services {
		if slices.Contains(s.Networks, n) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func (c *composeFile) proxyService() (string, *service) {
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, proxyImage) {
			return name, s
		}
	}
	return "", nil
}

func isPostgres(s *service) bool { return strings.HasPrefix(s.Image, "postgres:") }

// varRef is one interpolation in the compose file: ${NAME}, ${NAME:?msg},
// ${NAME:-default}, ... or $NAME. Op is the operator (":?", "-", ...), Arg
// what follows it.
type varRef struct {
	Name, Op, Arg string
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

// varRefs returns the interpolations in s, as compose reads them ($$ is a
// literal $).
func varRefs(s string) []varRef {
	var out []varRef
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			continue
		}
		switch next := s[i+1]; {
		case next == '$':
			i++
		case next == '{':
			body, _, ok := strings.Cut(s[i+2:], "}")
			if !ok {
				continue
			}
			name := varName.FindString(body)
			rest := body[len(name):]
			ref := varRef{Name: name}
			for _, op := range []string{":?", ":-", ":+", "?", "-", "+"} {
				if strings.HasPrefix(rest, op) {
					ref.Op, ref.Arg = op, rest[len(op):]
					break
				}
			}
			out = append(out, ref)
			i += 2 + len(body)
		default:
			if name := varName.FindString(s[i+1:]); name != "" {
				out = append(out, varRef{Name: name})
				i += len(name)
			}
		}
	}
	return out
}

// nodeVarRefs returns the interpolations in every scalar under n (comments
// are not interpolated, so they do not count).
func nodeVarRefs(n *yaml.Node) []varRef {
	var out []varRef
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			out = append(out, varRefs(n.Value)...)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return out
}

// serviceNodes maps each service's name to its YAML node.
func serviceNodes(root *yaml.Node) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "services" {
			continue
		}
		svcs := doc.Content[i+1]
		for j := 0; j+1 < len(svcs.Content); j += 2 {
			out[svcs.Content[j].Value] = svcs.Content[j+1]
		}
	}
	return out
}

// expand replaces every interpolation in s with a placeholder, so that a
// DSN can be parsed.
func expand(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '{' {
			if _, rest, ok := strings.Cut(s[i:], "}"); ok {
				b.WriteString("x")
				i = len(s) - len(rest) - 1
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// dsnHost returns the host a connection string names (URL or key=value).
func dsnHost(dsn string) string {
	dsn = expand(dsn)
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		return u.Hostname()
	}
	for _, kv := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(kv, "host="); ok {
			return v
		}
	}
	return ""
}

func checkNetworks(r *repo) []string {
	return withCompose(r, func(c *composeFile, _ *yaml.Node) []string {
		var ps []string
		for name, s := range c.Services {
			if len(s.Networks) == 0 || s.NetworkMode != "" {
				ps = append(ps, fmt.Sprintf("docker-compose.yml: service %s must list its networks (and no network_mode), or it joins the default network", name))
			}
			for _, n := range s.Networks {
				if _, ok := c.Networks[n]; !ok {
					ps = append(ps, fmt.Sprintf("docker-compose.yml: service %s is on network %s, which is not declared", name, n))
				}
			}
		}
		prod, pg, mb := c.need(svcProduction, &ps), c.need(svcPgveil, &ps), c.need(svcMetabase, &ps)
		if prod == nil || pg == nil || mb == nil {
			return ps
		}
		for _, n := range prod.Networks {
			for _, m := range c.members(n) {
				if m != svcProduction && m != svcPgveil {
					ps = append(ps, fmt.Sprintf("docker-compose.yml: %s is on network %s with production: only pgveil may be", m, n))
				}
			}
			if slices.Contains(mb.Networks, n) {
				ps = append(ps, fmt.Sprintf("docker-compose.yml: metabase shares network %s with production", n))
			}
		}
		if !slices.ContainsFunc(prod.Networks, func(n string) bool { return slices.Contains(pg.Networks, n) }) {
			ps = append(ps, "docker-compose.yml: pgveil shares no network with production")
		}
		return ps
	})
}

func checkMetabaseEnvironment(r *repo) []string {
	return withCompose(r, func(c *composeFile, root *yaml.Node) []string {
		var ps []string
		prod, pg, mb := c.need(svcProduction, &ps), c.need(svcPgveil, &ps), c.need(svcMetabase, &ps)
		if prod == nil || pg == nil || mb == nil {
			return ps
		}
		nodes := serviceNodes(root)
		// Everything that names production: its service's variables, and
		// those of the DSN pgveil reads it with.
		prodVars := map[string]bool{}
		for _, v := range nodeVarRefs(nodes[svcProduction]) {
			prodVars[v.Name] = true
		}
		for _, v := range varRefs(pg.Environment["SOURCE_DSN"]) {
			prodVars[v.Name] = true
		}
		sourceHost := dsnHost(pg.Environment["SOURCE_DSN"])
		targetHost := dsnHost(pg.Environment["TARGET_DSN"])
		if sourceHost == "" || targetHost == "" {
			ps = append(ps, "docker-compose.yml: pgveil's SOURCE_DSN and TARGET_DSN must name their hosts")
		}
		if mb.EnvFile != nil {
			ps = append(ps, "docker-compose.yml: metabase must not use env_file: it would get every secret in it")
		}
		for k, v := range mb.Environment {
			for _, ref := range varRefs(v) {
				if prodVars[ref.Name] {
					ps = append(ps, fmt.Sprintf("docker-compose.yml: metabase's %s uses ${%s}, a production setting", k, ref.Name))
				}
			}
			up := strings.ToUpper(k + "=" + v)
			words := []string{"SOURCE", strings.ToUpper(svcProduction), strings.ToUpper(sourceHost)}
			slices.Sort(words)
			for _, word := range slices.Compact(words) {
				if word != "" && strings.Contains(up, word) {
					ps = append(ps, fmt.Sprintf("docker-compose.yml: metabase's environment %s mentions %s", k, strings.ToLower(word)))
				}
			}
		}
		host := mb.Environment["MB_DB_HOST"]
		app := c.Services[host]
		switch {
		case mb.Environment["MB_DB_TYPE"] != "postgres" || host == "":
			ps = append(ps, "docker-compose.yml: metabase must keep its application data in PostgreSQL (MB_DB_TYPE=postgres, MB_DB_HOST)")
		case host == targetHost || host == svcAnalytics:
			ps = append(ps, fmt.Sprintf("docker-compose.yml: metabase's application database is %s, the analytics database: it must have its own", host))
		case host == sourceHost:
			ps = append(ps, fmt.Sprintf("docker-compose.yml: metabase's application database is %s, production", host))
		case app == nil || !isPostgres(app):
			ps = append(ps, fmt.Sprintf("docker-compose.yml: MB_DB_HOST %s is not a postgres service of this file", host))
		}
		return ps
	})
}

func checkHealthchecks(r *repo) []string {
	return withCompose(r, func(c *composeFile, _ *yaml.Node) []string {
		var ps []string
		for name, s := range c.Services {
			if !isPostgres(s) {
				continue
			}
			if s.Healthcheck == nil || s.Healthcheck.Disable || !strings.Contains(string(s.Healthcheck.Test), "pg_isready") {
				ps = append(ps, fmt.Sprintf("docker-compose.yml: postgres service %s needs a pg_isready healthcheck", name))
			}
		}
		if pg := c.need(svcPgveil, &ps); pg != nil {
			if pg.Healthcheck == nil || pg.Healthcheck.Disable || !strings.Contains(string(pg.Healthcheck.Test), "/healthz") {
				ps = append(ps, "docker-compose.yml: pgveil needs a healthcheck on /healthz")
			}
		}
		return ps
	})
}

func checkDependsOn(r *repo) []string {
	return withCompose(r, func(c *composeFile, _ *yaml.Node) []string {
		var ps []string
		for name, s := range c.Services {
			for dep, cond := range s.DependsOn {
				d := c.Services[dep]
				switch {
				case d == nil:
					ps = append(ps, fmt.Sprintf("docker-compose.yml: %s depends on %s, which does not exist", name, dep))
				case cond != "service_healthy":
					ps = append(ps, fmt.Sprintf("docker-compose.yml: %s must wait for %s with condition: service_healthy, not %s", name, dep, cond))
				case d.Healthcheck == nil:
					ps = append(ps, fmt.Sprintf("docker-compose.yml: %s waits for %s to be healthy, but it has no healthcheck", name, dep))
				}
			}
		}
		want := map[string][]string{svcPgveil: {svcProduction, svcAnalytics}, svcMetabase: {svcAnalytics}}
		if mb := c.Services[svcMetabase]; mb != nil && mb.Environment["MB_DB_HOST"] != "" {
			want[svcMetabase] = append(want[svcMetabase], mb.Environment["MB_DB_HOST"])
		}
		for name, deps := range want {
			s := c.need(name, &ps)
			if s == nil {
				continue
			}
			for _, dep := range deps {
				if _, ok := s.DependsOn[dep]; !ok {
					ps = append(ps, fmt.Sprintf("docker-compose.yml: %s must depend on %s (condition: service_healthy)", name, dep))
				}
			}
		}
		return ps
	})
}

// envExampleVars returns the variables .env.example sets, with their
// values, and problems such as a variable set twice.
func envExampleVars(text string) (map[string]string, []string) {
	vars := map[string]string{}
	var ps []string
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !varName.MatchString(k) || varName.FindString(k) != k {
			ps = append(ps, fmt.Sprintf(".env.example:%d: not NAME=value", i+1))
			continue
		}
		if _, dup := vars[k]; dup {
			ps = append(ps, fmt.Sprintf(".env.example:%d: %s is set twice", i+1, k))
		}
		vars[k] = v
	}
	return vars, ps
}

var secretName = regexp.MustCompile(`PASSWORD|SECRET|KEY|TOKEN`)

func checkVariables(r *repo) []string {
	return withCompose(r, func(c *composeFile, root *yaml.Node) []string {
		example, ps := envExampleVars(r.envExample)
		used := map[string]bool{}
		for _, v := range nodeVarRefs(root) {
			used[v.Name] = true
			if _, ok := example[v.Name]; !ok {
				ps = append(ps, fmt.Sprintf("docker-compose.yml uses ${%s}, which .env.example does not list", v.Name))
			}
		}
		for k, v := range example {
			if !used[k] {
				ps = append(ps, fmt.Sprintf(".env.example lists %s, which docker-compose.yml does not use", k))
			}
			if secretName.MatchString(k) && v != "" {
				ps = append(ps, fmt.Sprintf(".env.example gives the secret %s a value: leave it empty, so that nobody runs with a published one", k))
			}
		}
		for name, n := range serviceNodes(root) {
			s := c.Services[name]
			for _, v := range nodeVarRefs(n) {
				required := v.Op == ":?" || v.Op == "?"
				switch {
				case len(s.Profiles) == 0 && secretName.MatchString(v.Name) && v.Op != ":?":
					ps = append(ps, fmt.Sprintf("docker-compose.yml: %s uses the secret %s without ${%s:?...}: it must be required, with no default", name, v.Name, v.Name))
				case len(s.Profiles) > 0 && required:
					ps = append(ps, fmt.Sprintf("docker-compose.yml: %s (profiles %v) requires ${%s}: compose interpolates every service, so a plain `docker compose up` would fail without it", name, s.Profiles, v.Name))
				}
			}
		}
		return ps
	})
}

func checkPorts(r *repo) []string {
	return withCompose(r, func(c *composeFile, _ *yaml.Node) []string {
		var ps []string
		proxyName, _ := c.proxyService()
		for name, s := range c.Services {
			for _, p := range s.Ports {
				if name == proxyName && slices.Contains(s.Profiles, proxyProfile) {
					continue
				}
				if p.HostIP != loopback || p.Published == "" {
					ps = append(ps, fmt.Sprintf("docker-compose.yml: %s publishes port %s on %q: bind it to %s:PORT:%s", name, p.Target, p.HostIP, loopback, p.Target))
				}
			}
		}
		return ps
	})
}

func checkProxy(r *repo) []string {
	return withCompose(r, func(c *composeFile, _ *yaml.Node) []string {
		var ps []string
		name, s := c.proxyService()
		if s == nil {
			return []string{"docker-compose.yml: no oauth2-proxy service (image " + proxyImage + ")"}
		}
		if !slices.Equal(s.Profiles, []string{proxyProfile}) {
			ps = append(ps, fmt.Sprintf("docker-compose.yml: %s must be in profile %s only, not %v", name, proxyProfile, s.Profiles))
		}
		if mb := c.Services[svcMetabase]; mb != nil && len(mb.Profiles) > 0 {
			ps = append(ps, "docker-compose.yml: metabase must run without a profile")
		}
		if up := s.Environment["OAUTH2_PROXY_UPSTREAMS"]; !strings.Contains(up, "//"+svcMetabase+":") {
			ps = append(ps, fmt.Sprintf("docker-compose.yml: %s's upstream %q is not metabase", name, up))
		}
		for _, k := range []string{"OAUTH2_PROXY_SKIP_AUTH_REGEX", "OAUTH2_PROXY_TRUSTED_IPS", "OAUTH2_PROXY_SKIP_JWT_BEARER_TOKENS"} {
			if _, ok := s.Environment[k]; ok {
				ps = append(ps, fmt.Sprintf("docker-compose.yml: %s sets %s, another way around signing in", name, k))
			}
		}
		// The routes let through without signing in: only what the operator
		// sets in .env, empty by default.
		routes, ok := s.Environment["OAUTH2_PROXY_SKIP_AUTH_ROUTES"]
		refs := varRefs(routes)
		if !ok || len(refs) != 1 || refs[0].Arg != "" || routes != "${"+refs[0].Name+refs[0].Op+"}" {
			ps = append(ps, fmt.Sprintf("docker-compose.yml: %s's OAUTH2_PROXY_SKIP_AUTH_ROUTES must be one .env variable with an empty default, not %q", name, routes))
		} else {
			example, _ := envExampleVars(r.envExample)
			if v, ok := example[refs[0].Name]; !ok || v != "" {
				ps = append(ps, fmt.Sprintf(".env.example must list %s with an empty value (no route open by default)", refs[0].Name))
			}
		}
		return ps
	})
}

// rulesFile is what the checks read of examples/saas/pgveil.yaml.
type rulesFile struct {
	Target struct {
		Readers []string `yaml:"readers"`
	} `yaml:"target"`
	Tenancy map[string]any `yaml:"tenancy"`
	Tables  map[string]any `yaml:"tables"`
}

func parseRules(text string) (*rulesFile, error) {
	var rf rulesFile
	if err := yaml.Unmarshal([]byte(text), &rf); err != nil {
		return nil, fmt.Errorf("examples/saas/pgveil.yaml: %w", err)
	}
	return &rf, nil
}

func checkPgveilService(r *repo) []string {
	return withCompose(r, func(c *composeFile, _ *yaml.Node) []string {
		var ps []string
		pg := c.need(svcPgveil, &ps)
		if pg == nil {
			return ps
		}
		if pg.Build == nil {
			ps = append(ps, "docker-compose.yml: pgveil must be built from the Dockerfile (build:)")
		}
		if !strings.Contains(string(pg.Command), "run -c /etc/pgveil/pgveil.yaml") || !strings.Contains(string(pg.Command), "--listen") {
			ps = append(ps, fmt.Sprintf("docker-compose.yml: pgveil's command %q must be run -c /etc/pgveil/pgveil.yaml --listen ADDR", pg.Command))
		}
		// Every ${VAR} the rules read must be in pgveil's environment.
		for _, v := range varRefs(r.rules) {
			if _, ok := pg.Environment[v.Name]; !ok {
				ps = append(ps, fmt.Sprintf("docker-compose.yml: pgveil's environment lacks %s, which pgveil.yaml reads", v.Name))
			}
		}
		for name, s := range c.Services {
			for _, v := range s.Volumes {
				if strings.HasPrefix(v, "./") && !strings.HasSuffix(v, ":ro") {
					ps = append(ps, fmt.Sprintf("docker-compose.yml: %s mounts %s writable: mount files from the checkout read-only (:ro)", name, v))
				}
			}
		}
		return ps
	})
}

var (
	replicatedTables = regexp.MustCompile(`(?m)^replicated_tables="([^"]*)"`)
	superuserGrant   = regexp.MustCompile(`(?is)(CREATE|ALTER) ROLE pgveil[^;]*\bSUPERUSER`)
)

func checkInitScripts(r *repo) []string {
	return withCompose(r, func(c *composeFile, _ *yaml.Node) []string {
		var ps []string
		prod, ana := c.need(svcProduction, &ps), c.need(svcAnalytics, &ps)
		if prod == nil || ana == nil {
			return ps
		}
		for _, setting := range []string{"wal_level=logical", "max_slot_wal_keep_size="} {
			if !strings.Contains(string(prod.Command), setting) {
				ps = append(ps, fmt.Sprintf("docker-compose.yml: production's command must set %s", setting))
			}
		}
		mounts := map[string][]string{
			svcProduction: {"./examples/saas/schema.sql:/docker-entrypoint-initdb.d/", "./examples/deploy/production-init.sh:/docker-entrypoint-initdb.d/"},
			svcAnalytics:  {"./examples/deploy/analytics-init.sh:/docker-entrypoint-initdb.d/"},
		}
		for name, want := range mounts {
			for _, w := range want {
				if !slices.ContainsFunc(c.Services[name].Volumes, func(v string) bool { return strings.HasPrefix(v, w) }) {
					ps = append(ps, fmt.Sprintf("docker-compose.yml: %s must mount %s...", name, w))
				}
			}
		}
		rf, err := parseRules(r.rules)
		if err != nil {
			return append(ps, err.Error())
		}
		// The tables the production init script hands over are the ones the
		// rules replicate.
		var want []string
		for t := range rf.Tables {
			want = append(want, strings.TrimPrefix(t, "public."))
		}
		slices.Sort(want)
		m := replicatedTables.FindStringSubmatch(r.prodInit)
		if m == nil {
			return append(ps, `examples/deploy/production-init.sh: no replicated_tables="..." line`)
		}
		got := strings.Fields(m[1])
		slices.Sort(got)
		if !slices.Equal(got, want) {
			ps = append(ps, fmt.Sprintf("examples/deploy/production-init.sh: replicated_tables %v differ from the tables of examples/saas/pgveil.yaml %v", got, want))
		}
		for _, stmt := range []string{"LOGIN REPLICATION", "GRANT app_owner TO pgveil"} {
			if !strings.Contains(r.prodInit, stmt) {
				ps = append(ps, "examples/deploy/production-init.sh: missing "+stmt)
			}
		}
		if superuserGrant.MatchString(r.prodInit) {
			ps = append(ps, "examples/deploy/production-init.sh: pgveil must not be a superuser")
		}
		for _, reader := range rf.Target.Readers {
			if !strings.Contains(r.analyticInit, "CREATE ROLE "+reader+" LOGIN") {
				ps = append(ps, fmt.Sprintf("examples/deploy/analytics-init.sh: does not create the reader %s that pgveil.yaml grants", reader))
			}
		}
		if !strings.Contains(r.analyticInit, "OWNER TO pgveil") {
			ps = append(ps, "examples/deploy/analytics-init.sh: pgveil must own the analytics database")
		}
		// With a tenancy section pgveil creates tenant roles, and only then
		// needs to.
		if createRole := regexp.MustCompile(`CREATE ROLE pgveil [^;]*\bCREATEROLE\b`).MatchString(r.analyticInit); createRole != (rf.Tenancy != nil) {
			ps = append(ps, fmt.Sprintf("examples/deploy/analytics-init.sh: pgveil has CREATEROLE: %v, but examples/saas/pgveil.yaml has a tenancy section: %v", createRole, rf.Tenancy != nil))
		}
		return ps
	})
}

// ---------------------------------------------------------------------------
// Dockerfile, .dockerignore, .ci/run

type instruction struct {
	cmd, args string
}

// dockerInstructions splits a Dockerfile into instructions, joining
// continued lines and dropping comments.
func dockerInstructions(text string) []instruction {
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if cur.Len() == 0 && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if strings.HasPrefix(t, "#") {
			continue // a comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(t, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(t)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// goBuild is a `go build` command line: the environment set before it,
// its flags without -o, and its packages.
type goBuild struct {
	env, flags, pkgs []string
}

var shellSeparators = regexp.MustCompile(`&&|;|\|\|`)

// findGoBuild parses the first `go build` in text (a shell line).
func findGoBuild(text string) (goBuild, bool) {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, cmd := range shellSeparators.Split(line, -1) {
			f := strings.Fields(cmd)
			i := slices.Index(f, "go")
			if i < 0 || i+1 >= len(f) || f[i+1] != "build" {
				continue
			}
			var b goBuild
			for _, e := range f[:i] {
				if strings.Contains(e, "=") {
					b.env = append(b.env, e)
				}
			}
			args := f[i+2:]
			for j := 0; j < len(args); j++ {
				switch a := args[j]; {
				case a == "-o":
					j++ // the output path differs, by design
				case strings.HasPrefix(a, "-o="):
				case strings.HasPrefix(a, "-"):
					b.flags = append(b.flags, a)
				default:
					b.pkgs = append(b.pkgs, a)
				}
			}
			slices.Sort(b.env)
			slices.Sort(b.flags)
			return b, true
		}
	}
	return goBuild{}, false
}

func checkDockerfile(r *repo) []string {
	var ps []string
	ins := dockerInstructions(r.dockerfile)
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		return []string{"Dockerfile: must be multi-stage (a build stage and a minimal final stage)"}
	}
	final := stages[len(stages)-1]
	image := strings.Fields(final[0].args)[0]
	if !strings.HasPrefix(image, "gcr.io/distroless/") && image != "scratch" {
		ps = append(ps, fmt.Sprintf("Dockerfile: the final stage is %s: use a minimal image (distroless or scratch)", image))
	}
	user := ""
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			if in.args != `["/pgveil"]` {
				ps = append(ps, fmt.Sprintf(`Dockerfile: ENTRYPOINT %s: want ["/pgveil"]`, in.args))
			}
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); uid == "" || uid == "root" || (err == nil && n == 0) {
		ps = append(ps, fmt.Sprintf("Dockerfile: the final stage must run as a non-root USER (e.g. 65532:65532), not %q", user))
	}
	var runs strings.Builder
	for _, in := range ins {
		if in.cmd == "RUN" {
			runs.WriteString(in.args + "\n")
		}
	}
	got, ok := findGoBuild(runs.String())
	want, okCI := findGoBuild(r.ci)
	switch {
	case !ok:
		ps = append(ps, "Dockerfile: no RUN go build")
	case !okCI:
		ps = append(ps, ".ci/run: no go build line")
	case !slices.Equal(got.env, want.env) || !slices.Equal(got.flags, want.flags) || !slices.Equal(got.pkgs, want.pkgs):
		ps = append(ps, fmt.Sprintf("Dockerfile builds with %v go build %v %v; .ci/run with %v go build %v %v: they must agree",
			got.env, got.flags, got.pkgs, want.env, want.flags, want.pkgs))
	}
	return ps
}

// dockerignored reports whether .dockerignore leaves name out of the build
// context (patterns in order, ! re-includes).
func dockerignored(text, name string) bool {
	excluded := false
	for _, line := range strings.Split(text, "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"), "**/"), "/")
		if ok, _ := path.Match(p, name); ok {
			excluded = !neg
		}
	}
	return excluded
}

func checkDockerignore(r *repo) []string {
	var ps []string
	if dockerignored(r.dockerignore, ".git") {
		ps = append(ps, ".dockerignore leaves out .git, but the build stamps the commit (-buildvcs=true, as in .ci/run)")
	}
	if !dockerignored(r.dockerignore, ".env") {
		ps = append(ps, ".dockerignore must leave out .env (the secrets)")
	}
	for _, tracked := range []string{"go.mod", "go.sum", "cmd", ".env.example"} {
		if dockerignored(r.dockerignore, tracked) {
			ps = append(ps, fmt.Sprintf(".dockerignore leaves out %s, which the build needs (and the VCS stamp would call the tree modified)", tracked))
		}
	}
	return ps
}

// ---------------------------------------------------------------------------
// alerts.yml

type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert         string            `yaml:"alert"`
			Record        string            `yaml:"record"`
			Expr          string            `yaml:"expr"`
			For           string            `yaml:"for"`
			KeepFiringFor string            `yaml:"keep_firing_for"`
			Labels        map[string]string `yaml:"labels"`
			Annotations   map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// promqlWords are PromQL's keywords and aggregation operators: never metric
// names.
var promqlWords = map[string]bool{
	"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "bool": true, "offset": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// labelLists are the keywords followed by a list of label names.
var labelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promqlMetrics returns the metric names a PromQL expression selects: the
// identifiers outside strings, label matchers, ranges and label lists that
// are not keywords or function calls.
func promqlMetrics(expr string) ([]string, error) {
	var out []string
	skipTo := func(i int, open, close byte) (int, error) {
		depth := 0
		for j := i; j < len(expr); j++ {
			switch c := expr[j]; {
			case c == '"' || c == '\'' || c == '`':
				end := strings.IndexByte(expr[j+1:], c)
				if end < 0 {
					return 0, fmt.Errorf("unterminated string in %q", expr)
				}
				j += end + 1
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					return j, nil
				}
			}
		}
		return 0, fmt.Errorf("unbalanced %c in %q", open, expr)
	}
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9')
	}
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end := strings.IndexByte(expr[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string in %q", expr)
			}
			i += end + 1
		case c == '{' || c == '[':
			close := map[byte]byte{'{': '}', '[': ']'}[c]
			j, err := skipTo(i, c, close)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '#':
			if nl := strings.IndexByte(expr[i:], '\n'); nl >= 0 {
				i += nl
			} else {
				i = len(expr)
			}
		case c >= '0' && c <= '9' || c == '.':
			for i+1 < len(expr) && (isIdent(expr[i+1], false) || expr[i+1] == '.') {
				i++
			}
		case isIdent(c, true):
			j := i
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\n' || expr[k] == '\t') {
				k++
			}
			call := k < len(expr) && expr[k] == '('
			switch {
			case labelLists[word] && call:
				end, err := skipTo(k, '(', ')')
				if err != nil {
					return nil, err
				}
				j = end + 1
			case call, promqlWords[strings.ToLower(word)]:
			default:
				out = append(out, word)
			}
			i = j - 1
		}
	}
	return out, nil
}

// alertsMustWatch are the metrics some alert must use: the failures the
// rules exist for.
var alertsMustWatch = map[string]string{
	"up":                         "pgveil down",
	"pgveil_phase":               "/healthz failing (retrying, stopped)",
	"pgveil_lag_seconds":         "lag too high",
	"pgveil_slot_retained_bytes": "WAL retained by the slot",
	"pgveil_unruled_columns":     "unruled columns (schema drift)",
	"pgveil_errors_total":        "apply and masking errors",
	// Tenants reading every tenant's rows.
	"pgveil_tenancy_unprotected_tables": "tenant tables without row level security",
	"pgveil_tenancy_leaky_views":        "views that would show tenants other tenants' rows",
}

func checkAlerts(r *repo) []string {
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(r.alerts))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		return []string{"examples/deploy/alerts.yml: " + err.Error()}
	}
	var ps []string
	if len(rf.Groups) == 0 {
		ps = append(ps, "examples/deploy/alerts.yml: no rule groups")
	}
	seen := map[string]bool{}
	used := map[string]bool{}
	for _, g := range rf.Groups {
		for i, rule := range g.Rules {
			where := fmt.Sprintf("examples/deploy/alerts.yml: group %s, rule %d (%s)", g.Name, i+1, rule.Alert)
			if rule.Alert == "" || rule.Record != "" {
				ps = append(ps, where+": want an alerting rule (alert:)")
			}
			if seen[rule.Alert] {
				ps = append(ps, where+": the name is used twice")
			}
			seen[rule.Alert] = true
			if !slices.Contains([]string{"critical", "warning", "info"}, rule.Labels["severity"]) {
				ps = append(ps, where+": severity must be critical, warning or info")
			}
			if rule.Annotations["summary"] == "" {
				ps = append(ps, where+": no summary annotation")
			}
			for _, d := range []string{rule.For, rule.KeepFiringFor} {
				if d != "" {
					if _, err := time.ParseDuration(d); err != nil {
						ps = append(ps, fmt.Sprintf("%s: duration %q: %v", where, d, err))
					}
				}
			}
			names, err := promqlMetrics(rule.Expr)
			if err != nil || len(names) == 0 {
				ps = append(ps, fmt.Sprintf("%s: expr %q names no metric (%v)", where, rule.Expr, err))
			}
			for _, n := range names {
				used[n] = true
				if n != "up" && !r.metrics[n] {
					ps = append(ps, fmt.Sprintf("%s: pgveil exports no metric %s", where, n))
				}
			}
		}
	}
	for m, what := range alertsMustWatch {
		if !used[m] {
			ps = append(ps, fmt.Sprintf("examples/deploy/alerts.yml: no alert on %s (%s)", m, what))
		}
	}
	return ps
}

// exportedMetrics asks pgveil's metrics for the names they export, after
// feeding them one of each event so that every metric has a sample.
// Histograms also export NAME_bucket, NAME_sum and NAME_count.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	now := time.Now()
	m := metrics.New(func() time.Time { return now })
	m.SetBuildInfo("test")
	m.Phase(replicate.PhaseSnapshot, nil)
	m.SnapshotProgress("public.t", 1, 1, 1, true)
	m.Phase(replicate.PhaseStreaming, nil)
	m.Change("public.t", "insert")
	m.SourceAlive(2, false)
	m.TargetCommit(1, 1, time.Millisecond, 1, now)
	m.Slot(replicate.SlotStatus{Name: "pgveil", Exists: true, Active: true, WALStatus: "reserved", RetainedBytes: 1})
	m.Drift(&replicate.Drift{
		Unruled:       map[string][]string{"public.t": {"a"}},
		Missing:       map[string][]string{"public.t": {"b"}},
		TypeChanged:   map[string][]string{"public.t": {"c: int -> text"}},
		NewTables:     []string{"public.u"},
		MissingTables: []string{"public.v"},
	})
	m.Tenancy(1, 0, 0)
	m.Error("masking")
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gathering pgveil's metrics: %v", err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		case dto.MetricType_SUMMARY:
			for _, s := range []string{"_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		}
	}
	if !names["pgveil_up"] || len(names) < 20 {
		t.Fatalf("pgveil's metrics export only %d names: %v", len(names), names)
	}
	return names
}

func TestPromqlMetrics(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up{job="pgveil"} == 0`, []string{"up"}},
		{`pgveil_slot_retained_bytes > 5 * 1024^3`, []string{"pgveil_slot_retained_bytes"}},
		{`sum by (instance) (delta(pgveil_snapshot_rows[10m])) <= 0 and on (instance) pgveil_phase{phase="snapshot"} == 1`,
			[]string{"pgveil_snapshot_rows", "pgveil_phase"}},
		{`histogram_quantile(0.99, sum by (instance, le) (rate(pgveil_apply_seconds_bucket[10m]))) > 5`,
			[]string{"pgveil_apply_seconds_bucket"}},
		{`increase(pgveil_errors_total{kind="masking", x="}"}[1h]) > 1e3 or vector(0)`, []string{"pgveil_errors_total"}},
		{`a / ignoring(phase) group_left b offset 5m`, []string{"a", "b"}},
	}
	for _, tt := range tests {
		got, err := promqlMetrics(tt.expr)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("promqlMetrics(%q) = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
	if _, err := promqlMetrics(`up{job="pgveil"`); err == nil {
		t.Error("an unbalanced matcher is not an error")
	}
}

func TestVarRefs(t *testing.T) {
	got := varRefs(`a ${A:?need A} $${NOT} $B ${C:-} ${D}`)
	want := []varRef{{"A", ":?", "need A"}, {"B", "", ""}, {"C", ":-", ""}, {"D", "", ""}}
	if !slices.Equal(got, want) {
		t.Errorf("varRefs = %v, want %v", got, want)
	}
}

// ---------------------------------------------------------------------------
// pgveil.service

// unitSettings parses a systemd unit: section -> key -> values.
func unitSettings(text string) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if out[section] == nil {
				out[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if ok && section != "" {
				out[section][strings.TrimSpace(k)] = append(out[section][strings.TrimSpace(k)], strings.TrimSpace(v))
			}
		}
	}
	return out
}

func unitYes(v string) bool { return slices.Contains([]string{"yes", "true", "on", "1"}, v) }

func checkUnit(r *repo) []string {
	const file = "examples/deploy/pgveil.service"
	var ps []string
	svc := unitSettings(r.unit)["Service"]
	if svc == nil {
		return []string{file + ": no [Service] section"}
	}
	last := func(k string) string {
		if v := svc[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	if !unitYes(last("NoNewPrivileges")) {
		ps = append(ps, file+": NoNewPrivileges=yes is missing")
	}
	if u := last("User"); !unitYes(last("DynamicUser")) && (u == "" || u == "root" || u == "0") {
		ps = append(ps, fmt.Sprintf("%s: User=%q: run as a dedicated non-root user", file, u))
	}
	if last("ProtectSystem") != "strict" {
		ps = append(ps, file+": ProtectSystem=strict is missing")
	}
	if last("Restart") != "on-failure" {
		ps = append(ps, file+": Restart=on-failure is missing")
	}
	if !strings.HasSuffix(last("EnvironmentFile"), "/etc/pgveil/pgveil.env") {
		ps = append(ps, file+": the secrets come from EnvironmentFile=/etc/pgveil/pgveil.env")
	}
	start := last("ExecStart")
	if !strings.Contains(start, "pgveil run -c /etc/pgveil/pgveil.yaml") || !strings.Contains(start, "--listen "+loopback+":") {
		ps = append(ps, fmt.Sprintf("%s: ExecStart=%q: want pgveil run -c /etc/pgveil/pgveil.yaml --listen %s:PORT", file, start, loopback))
	}
	if !strings.Contains(last("ExecReload"), "-HUP") {
		ps = append(ps, file+": ExecReload must send SIGHUP (run reloads the rules on it)")
	}
	return ps
}
