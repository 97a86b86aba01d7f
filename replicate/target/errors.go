package target

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ServerError is an error PostgreSQL returned, with everything that may
// hold row data removed: the detail, hint and context lines, and the
// message itself unless its SQLSTATE class never quotes data (syntax and
// access errors, constraint violations, locks, resources, connection and
// transaction states). For other classes, data exceptions above all
// ("invalid input syntax for type integer: ..."), Message names the
// condition instead.
type ServerError struct {
	Severity   string // ERROR, FATAL, PANIC
	Code       string // SQLSTATE
	Message    string // the server's message, or the condition's name when the message was withheld
	Withheld   bool   // the server's message was replaced because it may quote a value
	Schema     string // names the server attached to the error, when it did
	Table      string
	Column     string
	DataType   string
	Constraint string
	Line       int64 // COPY: the input line that failed (from 1), 0 when unknown
}

// SQLState is the error's SQLSTATE, as pgconn.PgError has it.
func (e *ServerError) SQLState() string { return e.Code }

// Error says what failed, with the names the server gave and the SQLSTATE.
func (e *ServerError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	var about []string
	if e.Table != "" {
		t := e.Table
		if e.Schema != "" {
			t = e.Schema + "." + t
		}
		about = append(about, "table "+t)
	}
	if e.Column != "" {
		about = append(about, "column "+e.Column)
	}
	if e.DataType != "" {
		about = append(about, "type "+e.DataType)
	}
	if e.Constraint != "" {
		about = append(about, "constraint "+e.Constraint)
	}
	if e.Line > 0 {
		about = append(about, "line "+strconv.FormatInt(e.Line, 10))
	}
	if len(about) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(about, ", "))
		b.WriteString(")")
	}
	if e.Withheld {
		b.WriteString(" [server message withheld: it may quote a value]")
	}
	b.WriteString(" (SQLSTATE ")
	b.WriteString(e.Code)
	b.WriteString(")")
	return b.String()
}

// safeClass reports whether the messages of an SQLSTATE class name objects
// and settings but never quote a value.
func safeClass(class string) bool {
	switch class {
	case "08", // connection exception
		"0A", // feature not supported
		"23", // integrity constraint violation (the values are in the detail)
		"25", // invalid transaction state
		"28", // invalid authorization specification
		"3D", // invalid catalog name
		"3F", // invalid schema name
		"40", // transaction rollback (serialization failure, deadlock)
		"42", // syntax error or access rule violation
		"53", // insufficient resources
		"54", // program limit exceeded
		"55", // object not in prerequisite state (lock not available)
		"57", // operator intervention (cancel, timeouts, shutdown)
		"58": // system error
		return true
	}
	return false
}

// conditionName names an SQLSTATE whose message is withheld.
func conditionName(code string) string {
	switch code {
	case "22001":
		return "string data right truncation"
	case "22003":
		return "numeric value out of range"
	case "22004":
		return "null value not allowed"
	case "22007":
		return "invalid datetime format"
	case "22008":
		return "datetime field overflow"
	case "22009":
		return "invalid time zone displacement value"
	case "2200N":
		return "invalid XML content"
	case "22012":
		return "division by zero"
	case "22015":
		return "interval field overflow"
	case "22021":
		return "character not in repertoire"
	case "22023":
		return "invalid parameter value"
	case "22025":
		return "invalid escape sequence"
	case "22026":
		return "string data length mismatch"
	case "2202E":
		return "array subscript error"
	case "22P02":
		return "invalid text representation"
	case "22P03":
		return "invalid binary representation"
	case "22P04":
		return "bad COPY file format"
	case "22P05":
		return "untranslatable character"
	case "P0001":
		return "raise exception"
	}
	switch {
	case strings.HasPrefix(code, "22"):
		return "data exception"
	case strings.HasPrefix(code, "P0"):
		return "PL/pgSQL error"
	case strings.HasPrefix(code, "XX"):
		return "internal error"
	}
	return "server error"
}

// sanitize replaces a *pgconn.PgError in err's chain by a *ServerError;
// other errors (network, context) hold no data and are returned as they
// are.
func sanitize(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	se := &ServerError{
		Severity:   pgErr.Severity,
		Code:       pgErr.Code,
		Message:    pgErr.Message,
		Schema:     pgErr.SchemaName,
		Table:      pgErr.TableName,
		Column:     pgErr.ColumnName,
		DataType:   pgErr.DataTypeName,
		Constraint: pgErr.ConstraintName,
	}
	if len(se.Code) < 2 || !safeClass(se.Code[:2]) {
		se.Withheld = true
		se.Message = conditionName(se.Code)
	}
	return se
}

// copyWhere matches the context line PostgreSQL attaches to COPY FROM
// errors: `COPY t, line 3, column c: "value"` or `COPY t, line 3: "..."`.
var copyWhere = regexp.MustCompile(`(?m)^COPY .*?, line (\d+)(?:, column (.*))?`)

// sanitizeCopy is sanitize for COPY FROM, adding the failing line and,
// when it is one of columns, the column.
func sanitizeCopy(err error, columns []string) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	se := sanitize(err).(*ServerError)
	m := copyWhere.FindStringSubmatch(pgErr.Where)
	if m == nil {
		return se
	}
	se.Line, _ = strconv.ParseInt(m[1], 10, 64)
	if se.Column == "" && m[2] != "" {
		// The column name is followed by `: "value"` or ends the line; the
		// value must not leak, so only a known column name is kept.
		for _, c := range columns {
			if m[2] == c || strings.HasPrefix(m[2], c+": ") {
				if len(c) > len(se.Column) {
					se.Column = c
				}
			}
		}
	}
	return se
}

// isServerError reports whether err came from the server (as opposed to
// the network or the context).
func isServerError(err error) bool {
	var se *ServerError
	var pgErr *pgconn.PgError
	return errors.As(err, &se) || errors.As(err, &pgErr)
}

// ColumnTypeError reports a replicated column whose type on the target
// differs from its type in the plan. The replica cannot be converted in
// place (the masked values of the old type may not be valid in the new
// one): the table must be copied again.
type ColumnTypeError struct {
	Table   string // schema.table
	Column  string
	OldType string // on the target
	NewType string // in the plan
}

// Error names the table, the column and both types, and says a resync is needed.
func (e *ColumnTypeError) Error() string {
	return fmt.Sprintf("%s.%s is %s on the target but %s in the plan: the table needs a resync (drop it on the target and copy it again)",
		e.Table, e.Column, e.OldType, e.NewType)
}
