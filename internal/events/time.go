package events

import (
	"errors"
	"time"
)

// TimeLayout is how every timestamp in an event is written: UTC, RFC 3339,
// exactly six fractional digits. One fixed width keeps the canonical bytes
// (and so the hash) of an event independent of who formatted it, and sorts
// as text.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// ErrTime reports a timestamp not written in TimeLayout.
var ErrTime = errors.New("events: timestamp not in RFC 3339 UTC with microseconds")

// Time is a payload timestamp encoded in TimeLayout.
type Time struct{ time.Time }

// At returns t as a Time, in UTC and truncated to microseconds so that it
// survives an encode/decode round trip unchanged.
func At(t time.Time) Time { return Time{normTime(t)} }

func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = appendTime(b, t.Time)
	return append(b, '"'), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return ErrTime
	}
	v, err := parseTime(string(b[1 : len(b)-1]))
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// appendTime appends t in TimeLayout; written out because AppendFormat is a
// noticeable share of every encode.
func appendTime(b []byte, t time.Time) []byte {
	t = normTime(t)
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, TimeLayout) // not valid in an event anyway
	}
	us := t.Nanosecond() / 1000
	b = append(b,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-',
		byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':',
		byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.')
	for div := 100000; div > 0; div /= 10 {
		b = append(b, byte('0'+us/div%10))
	}
	return append(b, 'Z')
}

// parseTime reads TimeLayout. It is written out because time.Parse is a
// noticeable share of Decode.
func parseTime(s string) (time.Time, error) {
	if len(s) != len(TimeLayout) || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
		s[13] != ':' || s[16] != ':' || s[19] != '.' || s[26] != 'Z' {
		return time.Time{}, ErrTime
	}
	num := func(s string) int {
		x := 0
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return -1
			}
			x = x*10 + int(s[i]-'0')
		}
		return x
	}
	y, mo, d := num(s[0:4]), num(s[5:7]), num(s[8:10])
	h, mi, sec, us := num(s[11:13]), num(s[14:16]), num(s[17:19]), num(s[20:26])
	if y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 || us < 0 {
		return time.Time{}, ErrTime
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, us*1000, time.UTC)
	if t.Day() != d { // February 30th and the like
		return time.Time{}, ErrTime
	}
	return t, nil
}
