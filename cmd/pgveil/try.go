package main

import (
	"context"
	"fmt"

	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

// nullArg is how try spells NULL, in and out, as COPY does.
const nullArg = `\N`

func runTry(_ context.Context, e *env, args []string) int {
	fs := newFlags(e, "try")
	secretEnv := fs.String("secret-env", "", "the environment `variable` that holds the secret (at least 32 bytes)")
	typeName := fs.String("type", "text", "the column's PostgreSQL `type`, as in varchar(20), bigint, date, jsonb, text[]")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *secretEnv == "" || fs.NArg() < 2 {
		fmt.Fprintln(e.stderr, `pgveil try: give --secret-env, a rule and at least one value, as in:
  pgveil try --secret-env PGVEIL_SECRET '{fake: email}' alice@example.com
Values are masked one per line; \N stands for NULL.`)
		return exitUsage
	}
	secret, ok := e.lookupEnv(*secretEnv)
	if !ok || secret == "" {
		fmt.Fprintf(e.stderr, "pgveil try: environment variable %s is not set\n", *secretEnv)
		return exitUsage
	}
	keys, err := transform.NewKeys([]byte(secret))
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil try: %s: %v (it has %d)\n", *secretEnv, err, len(secret))
		return exitUsage
	}
	typ, err := schema.ParseType(*typeName)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil try: --type: %v\n", err)
		return exitUsage
	}
	reg := transform.Builtin()
	rule, err := rules.ParseRule(fs.Arg(0), reg)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil try: rule: %v\n", err)
		return exitUsage
	}
	t, err := reg.Build(rule, schema.Column{Name: "value", Type: typ}, keys)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil try: %s on %s: %v\n", rule.Name, typ, err)
		return exitProblems
	}
	if transform.IsDrop(t) {
		fmt.Fprintln(e.stderr, "pgveil try: drop leaves the column out of the replica: there is no value to show")
		return exitProblems
	}
	code := exitOK
	for i, in := range fs.Args()[1:] {
		v := schema.Text(in)
		if in == nullArg {
			v = schema.SQLNull()
		}
		out, err := v, error(nil)
		if v.State == schema.Present {
			out, err = t.Transform(v)
		}
		switch {
		case err != nil:
			fmt.Fprintf(e.stderr, "pgveil try: value %d: %v\n", i+1, err)
			code = exitProblems
		case out.State == schema.Null:
			fmt.Fprintln(e.stdout, nullArg)
		default:
			fmt.Fprintln(e.stdout, string(out.Text))
		}
	}
	return code
}
