package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestRedactDSN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://app:hunter2@db:5432/shop", "postgres://app:xxxxx@db:5432/shop"},
		{"postgresql://app:hunter2@db/shop?sslmode=require", "postgresql://app:xxxxx@db/shop?sslmode=require"},
		{"POSTGRES://app:hunter2@db/shop", "POSTGRES://app:xxxxx@db/shop"},
		{"postgres://app@db/shop", "postgres://app@db/shop"},
		{"postgres://db/shop", "postgres://db/shop"},
		{"postgres://db:5432/shop?sslmode=disable", "postgres://db:5432/shop?sslmode=disable"},
		{"postgres://app:p@ss:w/rd@db/shop", "postgres://app:xxxxx@db/shop"},
		{"postgres://app:pa?ss@db/shop", "postgres://app:xxxxx@db/shop"},
		{"postgres://app@db/shop?password=hunter2&sslmode=require", "postgres://app@db/shop?password=xxxxx&sslmode=require"},
		{"postgres://app@db/shop?sslmode=require&PassWord=hunter2", "postgres://app@db/shop?sslmode=require&PassWord=xxxxx"},
		{"postgres://app@db/shop?sslpassword=hunter2", "postgres://app@db/shop?sslpassword=xxxxx"},
		{"postgres://app@db/shop?pass%77ord=hunter2", "postgres://app@db/shop?pass%77ord=xxxxx"},
		{"postgres://app:hunter2@db/shop?password=hunter2", "postgres://app:xxxxx@db/shop?password=xxxxx"},
		{"host=db user=app password=hunter2 dbname=shop", "host=db user=app password=xxxxx dbname=shop"},
		{"host=db password='hunter 2' user=app", "host=db password=xxxxx user=app"},
		{`host=db password='it\'s hunter2' user=app`, "host=db password=xxxxx user=app"},
		{`host=db password=hun\ ter2 user=app`, "host=db password=xxxxx user=app"},
		{"host=db password = hunter2", "host=db password = xxxxx"},
		{"password=hunter2", "password=xxxxx"},
		{"  host=db\tpassword=hunter2\n", "  host=db\tpassword=xxxxx\n"},
		{"host='db one' sslpassword=hunter2", "host='db one' sslpassword=xxxxx"},
		// Unreadable: hide everything from the first unreadable part.
		{"host=db password='hunter2", "host=db password=xxxxx"},
		{"host='db password=hunter2", "host=xxxxx"},
		{"host=db hunter2", "host=db xxxxx"},
		{"hunter2", "xxxxx"},
	}
	for _, tt := range tests {
		if got := redactDSN(tt.in); got != tt.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDSNPrinting(t *testing.T) {
	d := DSN("postgres://app:hunter2@db/shop")
	const want = "postgres://app:xxxxx@db/shop"
	for _, got := range []string{
		d.String(),
		fmt.Sprint(d), fmt.Sprintf("%v|%+v|%s", d, d, d),
		fmt.Sprintf("%q", d), fmt.Sprintf("%#v", d), fmt.Sprintf("%x", d), fmt.Sprintf("%10s", d),
		d.LogValue().String(),
	} {
		if strings.Contains(got, "hunter2") || !strings.Contains(got, want) {
			t.Errorf("printed %q, want it to hold %q", got, want)
		}
	}
	if d.Reveal() != "postgres://app:hunter2@db/shop" {
		t.Errorf("Reveal() = %q", d.Reveal())
	}
	j, err := json.Marshal(struct{ D DSN }{d})
	if err != nil || string(j) != `{"D":"`+want+`"}` {
		t.Errorf("json = %s, %v", j, err)
	}
}

func TestSecretPrinting(t *testing.T) {
	s := Secret("hunter2-hunter2-hunter2-hunter2-hunter2")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "secret", s, "in", struct{ S Secret }{s})
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "secret", s, "in", struct{ S Secret }{s})
	text, _ := s.MarshalText()
	j, err := json.Marshal(map[string]any{"s": s, "p": &s})
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []string{
		s.String(), s.GoString(), string(text), string(j), buf.String(),
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %X %d %10.3s", s, s, s, s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", struct{ S Secret }{s}, &struct{ S Secret }{s}, []Secret{s}),
	} {
		if strings.Contains(got, "hunter") || strings.Contains(got, fmt.Sprintf("%x", "hunter")) || !strings.Contains(got, "[redacted]") {
			t.Errorf("printed %q", got)
		}
	}
	if s.Reveal() != "hunter2-hunter2-hunter2-hunter2-hunter2" {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
}
