package transform

import (
	"pgveil/schema"
	"strconv"
	"time"
)

// pgTime is a parsed date, timestamp or timestamptz in PostgreSQL's ISO
// output format: "2024-03-15", "2024-03-15 13:45:12.5",
// "0044-03-15 12:00:00+05:53:28 BC", "infinity", "-infinity".
// year is astronomical: 1 BC is year 0.
type pgTime struct {
	inf    int // +1 infinity, -1 -infinity
	year   int
	month  int
	day    int
	hour   int
	min    int
	sec    int
	usec   int
	clock  bool   // has a time of day
	sepT   bool   // ISO 8601 "T" between date and time (JSON values)
	offset []byte // "+05:30" or "Z" as written, for timestamptz
}

var errDate = invalid("not a valid date or timestamp (DateStyle ISO expected)")

func parsePGTime(b []byte) (pgTime, error) {
	var t pgTime
	switch string(b) {
	case "infinity":
		t.inf = 1
		return t, nil
	case "-infinity":
		t.inf = -1
		return t, nil
	}
	bc := false
	if n := len(b); n > 3 && string(b[n-3:]) == " BC" {
		bc = true
		b = b[:n-3]
	}
	sc := timeScanner{b: b}
	var ok bool
	if t.year, ok = sc.num(4, 7); !ok || !sc.sep('-') {
		return t, errDate
	}
	if t.month, ok = sc.num(2, 2); !ok || !sc.sep('-') {
		return t, errDate
	}
	if t.day, ok = sc.num(2, 2); !ok {
		return t, errDate
	}
	if sc.i < len(b) {
		t.sepT = sc.i < len(b) && b[sc.i] == 'T'
		if !sc.sep(' ') && !sc.sep('T') {
			return t, errDate
		}
		t.clock = true
		if t.hour, ok = sc.num(2, 2); !ok || !sc.sep(':') {
			return t, errDate
		}
		if t.min, ok = sc.num(2, 2); !ok || !sc.sep(':') {
			return t, errDate
		}
		if t.sec, ok = sc.num(2, 2); !ok {
			return t, errDate
		}
		if sc.sep('.') {
			start := sc.i
			frac, ok := sc.num(1, 6)
			if !ok {
				return t, errDate
			}
			for d := sc.i - start; d < 6; d++ {
				frac *= 10
			}
			t.usec = frac
		}
		if sc.i < len(b) && b[sc.i] == 'Z' {
			t.offset = b[sc.i : sc.i+1]
			sc.i++
		} else if sc.i < len(b) {
			if b[sc.i] != '+' && b[sc.i] != '-' {
				return t, errDate
			}
			start := sc.i
			sc.i++
			if _, ok := sc.num(2, 2); !ok {
				return t, errDate
			}
			for k := 0; k < 2 && sc.sep(':'); k++ {
				if _, ok := sc.num(2, 2); !ok {
					return t, errDate
				}
			}
			t.offset = b[start:sc.i]
		}
	}
	if sc.i != len(b) {
		return t, errDate
	}
	if t.year == 0 || t.month < 1 || t.month > 12 || t.day < 1 ||
		t.hour > 24 || t.min > 59 || t.sec > 60 ||
		t.hour == 24 && (t.min != 0 || t.sec != 0 || t.usec != 0) {
		return t, errDate
	}
	if bc {
		t.year = 1 - t.year
	}
	if t.day > daysIn(t.year, t.month) {
		return t, errDate
	}
	if t.hour == 24 {
		// "24:00:00" is the midnight that ends the day (PostgreSQL accepts
		// it on input and prints the next day's 00:00:00).
		t = t.fromTime(t.toTime())
	}
	return t, nil
}

// timeScanner reads the fields of a date or timestamp.
type timeScanner struct {
	b []byte
	i int
}

// num reads between min and max digits.
func (sc *timeScanner) num(min, max int) (int, bool) {
	start, v := sc.i, 0
	for sc.i < len(sc.b) && sc.i-start < max {
		c := sc.b[sc.i]
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int(c-'0')
		sc.i++
	}
	return v, sc.i-start >= min
}

// sep skips c when it comes next.
func (sc *timeScanner) sep(c byte) bool {
	if sc.i < len(sc.b) && sc.b[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// daysIn is the number of days in a month of the proleptic Gregorian
// calendar, year astronomical.
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// appendPGTime formats t as PostgreSQL does. Fractional seconds lose their
// trailing zeros; a timestamptz keeps its original offset.
func appendPGTime(dst []byte, t pgTime) []byte {
	switch t.inf {
	case 1:
		return append(dst, "infinity"...)
	case -1:
		return append(dst, "-infinity"...)
	}
	y, bc := t.year, false
	if y <= 0 {
		y, bc = 1-y, true
	}
	dst = appendPadded(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, t.month, 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, t.day, 2)
	if t.clock {
		if t.sepT {
			dst = append(dst, 'T')
		} else {
			dst = append(dst, ' ')
		}
		dst = appendPadded(dst, t.hour, 2)
		dst = append(dst, ':')
		dst = appendPadded(dst, t.min, 2)
		dst = append(dst, ':')
		dst = appendPadded(dst, t.sec, 2)
		if t.usec > 0 {
			var frac [7]byte
			f := strconv.AppendInt(frac[:0], int64(1000000+t.usec), 10)[1:]
			for len(f) > 0 && f[len(f)-1] == '0' {
				f = f[:len(f)-1]
			}
			dst = append(dst, '.')
			dst = append(dst, f...)
		}
		dst = append(dst, t.offset...)
	}
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

func appendPadded(dst []byte, v, width int) []byte {
	switch {
	case width == 2 && v >= 0 && v < 100:
		return append(dst, byte('0'+v/10), byte('0'+v%10))
	case width == 4 && v >= 0 && v < 10000:
		return append(dst, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
	}
	var buf [12]byte
	s := strconv.AppendInt(buf[:0], int64(v), 10)
	for n := len(s); n < width; n++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// toTime converts the wall-clock fields to a time.Time in UTC; a
// timestamptz's offset is kept aside and put back by fromTime.
func (t pgTime) toTime() time.Time {
	return time.Date(t.year, time.Month(t.month), t.day, t.hour, t.min, t.sec, t.usec*1000, time.UTC)
}

func (t pgTime) fromTime(tt time.Time) pgTime {
	t.year, t.day = tt.Year(), tt.Day()
	t.month = int(tt.Month())
	t.hour, t.min, t.sec = tt.Hour(), tt.Minute(), tt.Second()
	t.usec = tt.Nanosecond() / 1000
	return t
}

// The range of PostgreSQL's date and timestamp types: from 4714-11-24 BC
// (Julian day 0; astronomical year -4713) to 5874897-12-31 AD for dates and
// 294276-12-31 23:59:59.999999 AD for timestamps. For timestamptz the range
// applies to the UTC instant.
var (
	pgMinTime     = time.Date(-4713, time.November, 24, 0, 0, 0, 0, time.UTC)
	pgMaxDate     = time.Date(5874897, time.December, 31, 0, 0, 0, 0, time.UTC)
	pgMaxTimestmp = time.Date(294276, time.December, 31, 23, 59, 59, 999999000, time.UTC)
)

// clampPGTime keeps the wall-clock time tt within the range of its type;
// offset is the timestamptz offset it is written with ("+05:30", "Z", or
// empty), which moves the range of wall-clock times by as much.
func clampPGTime(tt time.Time, kind schema.Kind, offset []byte) time.Time {
	lo, hi := pgMinTime, pgMaxTimestmp
	if kind == schema.KindDate {
		hi = pgMaxDate
	}
	if off := offsetSeconds(offset); off != 0 {
		d := time.Duration(off) * time.Second
		lo, hi = lo.Add(d), hi.Add(d)
	}
	if tt.Before(lo) {
		return lo
	}
	if tt.After(hi) {
		return hi
	}
	return tt
}

// offsetSeconds converts an offset as parsePGTime keeps it ("+05:30",
// "-03", "+05:53:28", "Z") to seconds east of UTC.
func offsetSeconds(off []byte) int {
	if len(off) < 3 || off[0] != '+' && off[0] != '-' {
		return 0
	}
	secs, unit := 0, 3600
	for i := 1; i+1 < len(off) && unit >= 1; i += 3 {
		secs += (int(off[i]-'0')*10 + int(off[i+1]-'0')) * unit
		unit /= 60
	}
	if off[0] == '-' {
		return -secs
	}
	return secs
}

func isDateKind(k schema.Kind) bool {
	return k == schema.KindDate || k == schema.KindTimestamp || k == schema.KindTimestampTZ
}

// truncated returns t cut down to the start of its year, month, day, hour
// or minute.
func (t pgTime) truncated(unit string) pgTime {
	switch unit {
	case "year":
		t.month = 1
		fallthrough
	case "month":
		t.day = 1
		fallthrough
	case "day":
		t.hour = 0
		fallthrough
	case "hour":
		t.min = 0
		fallthrough
	case "minute":
		t.sec, t.usec = 0, 0
	}
	return t
}
