package transform

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"pgveil/schema"
	"strings"
	"unicode/utf8"
)

// checkLiteral reports whether s is a valid value of type t in PostgreSQL
// text form, and returns the form to send (booleans become t or f).
// Types it cannot check (enums, intervals, composites) are accepted as
// written; PostgreSQL checks them when the replica is written.
func checkLiteral(t schema.Type, s string) (string, error) {
	b := []byte(s)
	bad := func(what string) error { return fmt.Errorf("%q is not a valid %s value%s", s, t, what) }
	switch t.Kind {
	case schema.KindInt:
		if _, err := parseInt(b, t.Bits); err != nil {
			return "", bad("")
		}
	case schema.KindNumeric:
		d, err := parseDecimal(b)
		if err != nil || strings.ContainsAny(s, "eE") && !d.inf {
			return "", bad("")
		}
		if t.Precision > 0 && d.inf {
			return "", bad(" (numeric with a precision cannot hold infinity)")
		}
		if t.Precision > 0 && !d.nan && (d.intDigits() > t.Precision-t.Scale || d.normalize().scale > t.Scale) {
			return "", bad(" (too many digits)")
		}
	case schema.KindFloat:
		if _, err := parseFloat(b, t.Bits); err != nil {
			return "", bad("")
		}
	case schema.KindBool:
		switch strings.ToLower(s) {
		case "t", "true", "yes", "on", "1":
			return "t", nil
		case "f", "false", "no", "off", "0":
			return "f", nil
		}
		return "", bad("")
	case schema.KindDate:
		p, err := parsePGTime(b)
		if err != nil || p.clock {
			return "", bad(" (write dates as YYYY-MM-DD)")
		}
	case schema.KindTimestamp, schema.KindTimestampTZ:
		p, err := parsePGTime(b)
		if err != nil || (t.Kind == schema.KindTimestamp && len(p.offset) > 0) {
			return "", bad(" (write timestamps as YYYY-MM-DD HH:MM:SS)")
		}
	case schema.KindUUID:
		var u [16]byte
		if !parseUUID(b, &u) {
			return "", bad("")
		}
	case schema.KindBytea:
		if _, err := decodeBytea(b); err != nil {
			return "", bad(` (write bytea as \x followed by hex digits)`)
		}
	case schema.KindJSON, schema.KindJSONB:
		if !json.Valid(b) {
			return "", bad(" (not valid JSON)")
		}
	case schema.KindInet:
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return "", bad("")
			}
		} else if t.Name == "cidr" && p.Masked() != p {
			return "", bad(" (a cidr value has no bits set to the right of its mask)")
		}
	case schema.KindText:
		if t.Length > 0 && utf8.RuneCountInString(s) > t.Length {
			return "", fmt.Errorf("value is longer than %s allows", t)
		}
	}
	return s, nil
}
