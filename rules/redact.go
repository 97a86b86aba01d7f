package rules

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
)

const redacted = "[redacted]"

// Secret is the key material every masking key is derived from. It prints
// as [redacted] in every format, in JSON and text and in logs; Reveal
// returns it.
type Secret string

// Reveal returns the secret itself, for deriving keys.
func (s Secret) Reveal() string { return string(s) }

// String returns [redacted].
func (Secret) String() string { return redacted }

// GoString returns [redacted].
func (Secret) GoString() string { return redacted }

// Format writes [redacted] for every verb.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalText returns [redacted].
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalJSON returns "[redacted]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// LogValue returns [redacted].
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// DSN is a PostgreSQL connection string, as a URL
// (postgres://user:pass@host/db?sslmode=require) or as key=value pairs
// (host=db user=app password='a b'). It prints with every password
// replaced by xxxxx; Reveal returns it as written.
type DSN string

// Reveal returns the connection string with its password, for connecting.
func (d DSN) Reveal() string { return string(d) }

// String returns the DSN with its passwords replaced by xxxxx.
func (d DSN) String() string { return redactDSN(string(d)) }

// Format writes the redacted DSN for every verb (quoted for %q and %#v).
func (d DSN) Format(f fmt.State, verb rune) {
	s := d.String()
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		s = strconv.Quote(s)
	}
	_, _ = io.WriteString(f, s)
}

// MarshalText returns the redacted DSN, so that encoders (JSON, YAML,
// slog's JSON handler) never see the password.
func (d DSN) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// LogValue returns the redacted DSN.
func (d DSN) LogValue() slog.Value { return slog.StringValue(d.String()) }

const mask = "xxxxx"

// redactDSN replaces the passwords in a connection string with xxxxx. On
// strings it cannot read, it hides too much rather than too little.
func redactDSN(s string) string {
	if s == "" {
		return s
	}
	if n := schemeLen(s); n > 0 {
		return redactURL(s, n)
	}
	return redactKeyValue(s)
}

// schemeLen returns the length of a leading "scheme://", or 0.
func schemeLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':' && strings.HasPrefix(s[i:], "://"):
			return i + 3
		default:
			return 0
		}
	}
	return 0
}

func redactURL(s string, schemeEnd int) string {
	rest := s[schemeEnd:]
	// The user information ends at the last @: a password may hold a raw
	// @, ? or /, and an @ later in the URL only makes us hide more.
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
			rest = rest[:colon+1] + mask + rest[at:]
		}
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		params := strings.Split(rest[q+1:], "&")
		for i, kv := range params {
			if k, _, ok := strings.Cut(kv, "="); ok && isPasswordKey(k) {
				params[i] = k + "=" + mask
			}
		}
		rest = rest[:q+1] + strings.Join(params, "&")
	}
	return s[:schemeEnd] + rest
}

// isPasswordKey reports whether a connection parameter holds a password
// (password, sslpassword), in any case or URL escaping.
func isPasswordKey(k string) bool {
	if u, err := url.QueryUnescape(k); err == nil {
		k = u
	}
	return strings.Contains(strings.ToLower(k), "password")
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// redactKeyValue redacts a libpq "key=value key='quoted value'" string.
// From the first thing it cannot read on, it hides everything.
func redactKeyValue(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	i := 0
	for {
		j := i
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		b.WriteString(s[i:j])
		i = j
		if i >= len(s) {
			return b.String()
		}
		for j < len(s) && s[j] != '=' && !isSpace(s[j]) {
			j++
		}
		key := s[i:j]
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		if key == "" || j >= len(s) || s[j] != '=' {
			b.WriteString(mask)
			return b.String()
		}
		j++
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		b.WriteString(s[i:j])
		v := j
		if v < len(s) && s[v] == '\'' {
			v++
			for v < len(s) && s[v] != '\'' {
				if s[v] == '\\' {
					v++
				}
				v++
			}
			if v >= len(s) {
				b.WriteString(mask)
				return b.String()
			}
			v++
		} else {
			for v < len(s) && !isSpace(s[v]) {
				if s[v] == '\\' {
					v++
				}
				v++
			}
			v = min(v, len(s))
		}
		if isPasswordKey(key) {
			b.WriteString(mask)
		} else {
			b.WriteString(s[j:v])
		}
		i = v
	}
}
