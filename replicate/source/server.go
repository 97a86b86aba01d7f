package source

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
	"pgveil/transform"
)

// Server describes the source server and the role pgveil connects as.
type Server struct {
	Version             int    // server_version_num, e.g. 150004
	WalLevel            string // minimal, replica or logical
	MaxReplicationSlots int
	UsedSlots           int // rows of pg_replication_slots
	MaxWalSenders       int
	IsSuperuser         bool
	HasReplication      bool // the role's REPLICATION attribute
	User                string
	Database            string
}

// ReadServer reads the server's version and replication settings and the
// connected role's attributes.
func ReadServer(ctx context.Context, conn *pgx.Conn) (*Server, error) {
	var s Server
	err := conn.QueryRow(ctx, `
SELECT current_setting('server_version_num')::int,
       current_setting('wal_level'),
       current_setting('max_replication_slots')::int,
       (SELECT count(*) FROM pg_catalog.pg_replication_slots)::int,
       current_setting('max_wal_senders')::int,
       r.rolsuper, r.rolreplication, current_user::text, current_database()::text
FROM pg_catalog.pg_roles r
WHERE r.rolname = current_user`).Scan(&s.Version, &s.WalLevel, &s.MaxReplicationSlots, &s.UsedSlots,
		&s.MaxWalSenders, &s.IsSuperuser, &s.HasReplication, &s.User, &s.Database)
	if err != nil {
		return nil, schema.WrapSQL(err, "reading the source server's settings")
	}
	return &s, nil
}

// VersionString is the version as people write it: "15.4", "9.6.24".
func (s *Server) VersionString() string {
	if s.Version >= 100000 {
		return fmt.Sprintf("%d.%d", s.Version/10000, s.Version%10000)
	}
	return fmt.Sprintf("%d.%d.%d", s.Version/10000, s.Version/100%100, s.Version%100)
}

// Problem is one unmet prerequisite, with how to fix it.
type Problem struct {
	Table string // "public.events", or "" when global
	Msg   string
}

// String is "table: message", or the message alone.
func (p Problem) String() string {
	if p.Table == "" {
		return p.Msg
	}
	return p.Table + ": " + p.Msg
}

// problemLines lists problems one per line.
func problemLines(ps []Problem) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// Check returns every prerequisite problem at once (nil if none), each
// saying how to fix it: the server version, wal_level, the role's
// REPLICATION attribute, a free replication slot (unless slotExists:
// pgveil's own slot already exists), max_wal_senders, and for each table
// of the plan: that it exists, that it has a replica identity (without one,
// publishing it would make production's UPDATE and DELETE fail), that its
// identity columns can be published. Owning the tables is not required:
// when the publication must change and the role may not change it,
// EnsurePublication says what the tables' owner must run.
func Check(srv *Server, cat *schema.Catalog, plan *transform.Plan, slotExists bool) []Problem {
	var ps []Problem
	global := func(format string, args ...any) {
		ps = append(ps, Problem{Msg: fmt.Sprintf(format, args...)})
	}
	if srv != nil {
		if srv.Version < 100000 {
			global("PostgreSQL %s is older than 10: logical replication is not supported; upgrade the source server (PostgreSQL 15 or later pushes column lists and row filters to production)", srv.VersionString())
		}
		if srv.WalLevel != "logical" {
			global("wal_level is %q: set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL", srv.WalLevel)
		}
		if !srv.HasReplication && !srv.IsSuperuser {
			role := schema.QuoteIdent(srv.User)
			global("role %s has no REPLICATION attribute: ALTER ROLE %s REPLICATION (or use a role that has it)", role, role)
		}
		if !slotExists && srv.MaxReplicationSlots > 0 && srv.UsedSlots >= srv.MaxReplicationSlots {
			global("no free replication slot (max_replication_slots = %d, %d used): raise max_replication_slots and restart PostgreSQL, or drop an unused slot (SELECT slot_name FROM pg_replication_slots WHERE NOT active; then SELECT pg_drop_replication_slot('name'))",
				srv.MaxReplicationSlots, srv.UsedSlots)
		}
		if !slotExists && srv.MaxReplicationSlots == 0 {
			global("max_replication_slots = 0: set max_replication_slots to at least 1 (10 is usual) and restart PostgreSQL")
		}
		if srv.MaxWalSenders == 0 {
			global("max_wal_senders = 0: set max_wal_senders to at least 1 (10 is usual) and restart PostgreSQL")
		}
	}
	if plan == nil {
		return ps
	}
	for _, tp := range plan.Tables() {
		name := schema.TableName{Schema: tp.Table.Schema, Name: tp.Table.Name}
		q := name.QualifiedName()
		add := func(format string, args ...any) {
			ps = append(ps, Problem{Table: q, Msg: fmt.Sprintf(format, args...)})
		}
		var info *schema.TableInfo
		if cat != nil {
			info = cat.Info[name]
		}
		if info == nil || cat.Tables[name] == nil {
			add("table not found in the source database: create it, or remove its rules")
			continue
		}
		switch {
		case info.ReplicaIdentity == 'n':
			add("REPLICA IDENTITY NOTHING: UPDATE and DELETE cannot be replicated, and once the table is published they would fail in production; ALTER TABLE %s REPLICA IDENTITY DEFAULT (with a primary key) or REPLICA IDENTITY FULL", q)
		case info.ReplicaIdentity == 'd' && !info.HasPrimaryKey:
			add("no primary key and REPLICA IDENTITY DEFAULT: UPDATE and DELETE cannot be replicated, and once the table is published they would fail in production; add a primary key or ALTER TABLE %s REPLICA IDENTITY FULL", q)
		case info.ReplicaIdentity == 'i' && len(info.IdentityColumns) == 0:
			add("REPLICA IDENTITY USING INDEX names no usable index: UPDATE and DELETE cannot be replicated, and once the table is published they would fail in production; ALTER TABLE %s REPLICA IDENTITY USING INDEX with a valid unique index, or REPLICA IDENTITY DEFAULT", q)
		}
		for _, c := range info.IdentityColumns {
			if slices.Contains(cat.Tables[name].Generated, c) {
				add("replica identity column %s is a generated column, which PostgreSQL does not publish: UPDATE and DELETE cannot be replicated; use another replica identity (ALTER TABLE %s REPLICA IDENTITY ...)", schema.QuoteIdent(c), q)
			}
		}
		if info.Partitioned && srv != nil && srv.Version > 0 && srv.Version < 130000 {
			add("partitioned table: PostgreSQL %s cannot publish partitioned tables (13 or later can); publish its partitions or upgrade", srv.VersionString())
		}
	}
	return ps
}
