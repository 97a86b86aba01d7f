// Package rules loads, checks and compiles pgveil's masking rules.
//
// A rules file is YAML (docs/rules.md is the reference):
//
//	source:
//	  dsn: ${SOURCE_DSN}
//	target:
//	  dsn: ${TARGET_DSN}
//	  readers: [metabase_ro]
//	secret: ${PGVEIL_SECRET}
//	tables:
//	  public.customers:
//	    where: "deleted_at IS NULL"
//	    columns:
//	      id: hash
//	      email: {fake: email}
//	      notes: drop
//
// Parse and Load check the file without a database: unknown keys, wrong
// node kinds, duplicate keys, unset environment variables, malformed table
// and column names, unknown transformers and bad parameters. Every problem
// is reported at once, each with its file, line and column. Compile then
// checks the rules against the source catalog (missing tables and columns,
// columns without a rule, rules that do not fit a column's type) and
// builds the transform.Plan.
//
// Table and column names follow SQL: unquoted parts are folded to lower
// case and double-quoted parts keep their case. YAML reads a key that
// starts with a double quote as a YAML string, so write a quoted SQL name
// inside single quotes: '"Sales"."Order Items"'.
//
// Every value (not keys) may hold ${VAR}, ${VAR:-default} and $$ for a
// literal $. Inside a flow map ({...}) quote it, as YAML requires:
// {truncate: "${LEN}"}. A value holding a ${VAR} takes the YAML type of
// what it expands to, quoted or not; an explicit tag keeps a string:
// !!str "${LEN}".
//
// Values of the environment, the secret and passwords in DSNs never appear
// in a Problem; Secret and DSN print redacted forms.
package rules
