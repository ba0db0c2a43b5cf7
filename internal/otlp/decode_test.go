package otlp

import (
	"encoding/hex"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestDecodeLogsIDs pins how trace and span ids are read: hex in JSON
// (OTLP's rule), 16 and 8 bytes in protobuf; anything else is malformed.
func TestDecodeLogsIDs(t *testing.T) {
	pb := func(traceID []byte) []byte {
		ld := codexFixture()
		ld.ResourceLogs[0].ScopeLogs[0].LogRecords[7].TraceId = traceID
		b, err := proto.Marshal(ld)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	js := func(traceID string) []byte {
		return []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"` + traceID + `","spanId":"00f067aa0ba902b7"}]}]}]}`)
	}
	tid, _ := hex.DecodeString("4bf92f3577b34da6a3ce929d0e0e4736")
	for _, tc := range []struct {
		name string
		body []byte
		enc  string
		want string // the trace id read, "" when malformed
	}{
		{"json hex", js("4bf92f3577b34da6a3ce929d0e0e4736"), EncodingJSON, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"json empty", js(""), EncodingJSON, "00000000000000000000000000000000"},
		{"json base64", js("S/kvNXezTaajzpKdDg5HNg=="), EncodingJSON, ""},
		{"json short", js("abc"), EncodingJSON, ""},
		{"protobuf", pb(tid), EncodingProtobuf, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"protobuf short", pb(tid[:5]), EncodingProtobuf, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ld, err := DecodeLogs(tc.body, tc.enc)
			if tc.want == "" {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, rl := range ld.ResourceLogs().All() {
				for _, sl := range rl.ScopeLogs().All() {
					for _, lr := range sl.LogRecords().All() {
						if id := lr.TraceID(); !id.IsEmpty() || got == "" {
							got = hex.EncodeToString(id[:])
						}
					}
				}
			}
			if got != tc.want {
				t.Errorf("trace id %s, want %s", got, tc.want)
			}
		})
	}
}
