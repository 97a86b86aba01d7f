package transform

import (
	"pgveil/schema"
	"testing"
	"time"
)

func TestPGTimeRoundTrip(t *testing.T) {
	for _, s := range []string{
		"2024-03-15",
		"2024-02-29",
		"2000-02-29",
		"0001-01-01",
		"0001-12-31 BC",
		"0044-03-15 BC",
		"4714-11-24 BC",
		"5874897-12-31",
		"infinity",
		"-infinity",
		"2024-03-15 13:45:12",
		"2024-03-15 13:45:12.5",
		"2024-03-15 13:45:12.05",
		"2024-03-15 13:45:12.123456",
		"2024-03-15 13:45:12.000001",
		"294276-12-31 23:59:59.999999",
		"4714-11-24 00:00:00 BC",
		"2024-03-15 13:45:12+00",
		"2024-03-15 13:45:12-03",
		"2024-03-15 13:45:12.5+05:30",
		"1890-03-15 13:45:12+05:53:28",
		"0044-03-15 12:00:00+05:53:28 BC",
		"2024-03-15 23:59:60",
		"2024-03-15T10:00:00Z",
		"2024-03-15T10:00:00.25+02:00",
		"2024-03-15T10:00:00",
	} {
		p, err := parsePGTime([]byte(s))
		if err != nil {
			t.Errorf("parse %q: %v", s, err)
			continue
		}
		if got := string(appendPGTime(nil, p)); got != s {
			t.Errorf("round trip of %q gives %q", s, got)
		}
	}
}

func TestPGTimeFields(t *testing.T) {
	tests := []struct {
		in   string
		want pgTime
	}{
		{"2024-03-15", pgTime{year: 2024, month: 3, day: 15}},
		{"0044-03-15 BC", pgTime{year: -43, month: 3, day: 15}},
		{"0001-01-01 BC", pgTime{year: 0, month: 1, day: 1}},
		{"2024-03-15 13:45:12.5", pgTime{year: 2024, month: 3, day: 15, hour: 13, min: 45, sec: 12, usec: 500000, clock: true}},
		{"2024-03-15 13:45:12.000123", pgTime{year: 2024, month: 3, day: 15, hour: 13, min: 45, sec: 12, usec: 123, clock: true}},
		{"0044-03-15 12:00:00+05:53:28 BC", pgTime{year: -43, month: 3, day: 15, hour: 12, clock: true, offset: []byte("+05:53:28")}},
		{"2024-03-15T10:00:00Z", pgTime{year: 2024, month: 3, day: 15, hour: 10, clock: true, sepT: true, offset: []byte("Z")}},
		{"294276-12-31 23:59:59.999999", pgTime{year: 294276, month: 12, day: 31, hour: 23, min: 59, sec: 59, usec: 999999, clock: true}},
		{"5874897-12-31", pgTime{year: 5874897, month: 12, day: 31}},
		{"infinity", pgTime{inf: 1}},
		{"-infinity", pgTime{inf: -1}},
		{"2024-02-28 24:00:00", pgTime{year: 2024, month: 2, day: 29, clock: true}},
	}
	for _, tt := range tests {
		got, err := parsePGTime([]byte(tt.in))
		if err != nil {
			t.Errorf("parse %q: %v", tt.in, err)
			continue
		}
		if got.inf != tt.want.inf || got.year != tt.want.year || got.month != tt.want.month || got.day != tt.want.day ||
			got.hour != tt.want.hour || got.min != tt.want.min || got.sec != tt.want.sec || got.usec != tt.want.usec ||
			got.clock != tt.want.clock || got.sepT != tt.want.sepT || string(got.offset) != string(tt.want.offset) {
			t.Errorf("parse %q = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestPGTimeRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"2024",
		"2024-03",
		"2024-3-15",
		"24-03-15",
		"2024/03/15",
		"2024-03-15 ",
		"2024-03-15X10:00:00",
		"2024-03-15T",
		"2024-13-01",
		"2024-00-10",
		"2024-01-00",
		"2024-01-32",
		"2024-02-30",
		"2023-02-29",
		"1900-02-29",
		"2024-04-31",
		"0000-01-01",
		"0000-01-01 BC",
		"12345678-01-01",
		"2024-03-15 25:00:00",
		"2024-03-15 24:00:01",
		"2024-03-15 24:30:00",
		"2024-03-15 12:60:00",
		"2024-03-15 12:00:61",
		"2024-03-15 12:00",
		"2024-03-15 1:00:00",
		"2024-03-15 12:00:00.",
		"2024-03-15 12:00:00.1234567",
		"2024-03-15 12:00:00+5",
		"2024-03-15 12:00:00 +05",
		"2024-03-15 12:00:00+05:3",
		"2024-03-15 12:00:00+05:30:00:00",
		"2024-03-15 12:00:00+0530",
		"2024-03-15 12:00:00Z+01",
		"2024-03-15Z",
		"2024-03-15 BC BC",
		"2024-03-15 AD",
		" 2024-03-15",
		"Infinity",
		"+infinity",
		"today",
		veilCanary,
	} {
		if p, err := parsePGTime([]byte(s)); err == nil {
			t.Errorf("parse %q: no error (got %+v)", s, p)
		} else {
			veilMaskError(t, err, s)
		}
	}
}

func TestDaysIn(t *testing.T) {
	tests := []struct{ year, month, want int }{
		{2024, 2, 29}, {2023, 2, 28}, {1900, 2, 28}, {2000, 2, 29},
		{0, 2, 29}, {-4, 2, 29}, {-1, 2, 28}, {-100, 2, 28}, {-400, 2, 29},
		{2024, 1, 31}, {2024, 4, 30}, {2024, 6, 30}, {2024, 9, 30}, {2024, 11, 30}, {2024, 12, 31},
	}
	for _, tt := range tests {
		if got := daysIn(tt.year, tt.month); got != tt.want {
			t.Errorf("daysIn(%d, %d) = %d, want %d", tt.year, tt.month, got, tt.want)
		}
		// The same as Go's proleptic Gregorian calendar.
		if got := time.Date(tt.year, time.Month(tt.month)+1, 0, 0, 0, 0, 0, time.UTC).Day(); got != tt.want {
			t.Errorf("time.Date disagrees for %d-%d: %d", tt.year, tt.month, got)
		}
	}
}

func TestOffsetSeconds(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0}, {"Z", 0}, {"+00", 0}, {"-03", -3 * 3600}, {"+05:30", 5*3600 + 30*60},
		{"+05:53:28", 5*3600 + 53*60 + 28}, {"-09:30", -(9*3600 + 30*60)}, {"+14", 14 * 3600},
	}
	for _, tt := range tests {
		if got := offsetSeconds([]byte(tt.in)); got != tt.want {
			t.Errorf("offsetSeconds(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestClampPGTime(t *testing.T) {
	// PostgreSQL's limits, written out independently of the package's.
	minT := time.Date(-4713, time.November, 24, 0, 0, 0, 0, time.UTC) // 4714-11-24 BC
	maxTS := time.Date(294276, time.December, 31, 23, 59, 59, 999999000, time.UTC)
	maxD := time.Date(5874897, time.December, 31, 0, 0, 0, 0, time.UTC)
	hour := time.Hour
	tests := []struct {
		name   string
		in     time.Time
		kind   schema.Kind
		offset string
		want   time.Time
	}{
		{"inside", time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC), schema.KindDate, "", time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC)},
		{"min date kept", minT, schema.KindDate, "", minT},
		{"below min date", minT.AddDate(0, 0, -1), schema.KindDate, "", minT},
		{"max date kept", maxD, schema.KindDate, "", maxD},
		{"above max date", maxD.AddDate(0, 0, 1), schema.KindDate, "", maxD},
		{"date above timestamp max is fine", maxTS.AddDate(1, 0, 0), schema.KindDate, "", maxTS.AddDate(1, 0, 0)},
		{"above max timestamp", maxTS.Add(hour), schema.KindTimestamp, "", maxTS},
		{"below min timestamp", minT.Add(-hour), schema.KindTimestamp, "", minT},
		{"max timestamp kept", maxTS, schema.KindTimestamp, "", maxTS},
		// timestamptz: the limits hold for the UTC instant.
		{"tz max in -05", maxTS, schema.KindTimestampTZ, "-05", maxTS.Add(-5 * hour)},
		{"tz in range in +05:30", maxTS.Add(5 * hour), schema.KindTimestampTZ, "+05:30", maxTS.Add(5 * hour)},
		{"tz above max in +05:30", maxTS.Add(6 * hour), schema.KindTimestampTZ, "+05:30", maxTS.Add(5*hour + 30*time.Minute)},
		{"tz min in +05:53:28", minT, schema.KindTimestampTZ, "+05:53:28", minT.Add(5*hour + 53*time.Minute + 28*time.Second)},
		{"tz min in -03 kept", minT.Add(-3 * hour), schema.KindTimestampTZ, "-03", minT.Add(-3 * hour)},
		{"tz Z", maxTS.Add(hour), schema.KindTimestampTZ, "Z", maxTS},
	}
	for _, tt := range tests {
		if got := clampPGTime(tt.in, tt.kind, []byte(tt.offset)); !got.Equal(tt.want) {
			t.Errorf("%s: clamp(%v, %v, %q) = %v, want %v", tt.name, tt.in, tt.kind, tt.offset, got, tt.want)
		}
	}
	if !pgMinTime.Equal(minT) || !pgMaxTimestmp.Equal(maxTS) || !pgMaxDate.Equal(maxD) {
		t.Errorf("limits: %v %v %v", pgMinTime, pgMaxTimestmp, pgMaxDate)
	}
}

func TestPGTimeToFromTime(t *testing.T) {
	for _, s := range []string{
		"2024-03-15 13:45:12.123456+05:30",
		"0044-03-15 12:00:00 BC",
		"294276-12-31 23:59:59.999999",
		"4714-11-24 00:00:00+05:53:28 BC",
	} {
		p, err := parsePGTime([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(appendPGTime(nil, p.fromTime(p.toTime()))); got != s {
			t.Errorf("toTime/fromTime of %q gives %q", s, got)
		}
	}
	p, _ := parsePGTime([]byte("0001-12-31 23:00:00 BC"))
	if got := string(appendPGTime(nil, p.fromTime(p.toTime().Add(2*time.Hour)))); got != "0001-01-01 01:00:00" {
		t.Errorf("crossing from 1 BC to 1 AD gives %q", got)
	}
}
