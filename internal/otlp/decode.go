package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Encodings of an OTLP/HTTP body.
const (
	EncodingProtobuf = "protobuf"
	EncodingJSON     = "json"
)

// Errors of reading a request. Each carries the HTTP status the handler
// answers with (Status).
var (
	// ErrContentType: neither application/x-protobuf nor application/json,
	// or a Content-Encoding other than gzip (415).
	ErrContentType = errors.New("otlp: unsupported content type or encoding")
	// ErrTooLarge: the body, compressed or not, is over its bound (413).
	ErrTooLarge = errors.New("otlp: request body too large")
	// ErrMalformed: the body is not an OTLP export request (400).
	ErrMalformed = errors.New("otlp: malformed request")
)

// ContentEncoding returns the body encoding a Content-Type names, or
// ErrContentType.
func ContentEncoding(contentType string) (string, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrContentType, contentType)
	}
	switch mt {
	case "application/x-protobuf", "application/protobuf":
		return EncodingProtobuf, nil
	case "application/json":
		return EncodingJSON, nil
	}
	return "", fmt.Errorf("%w: %q", ErrContentType, mt)
}

// readBody reads r, gunzipping it when gzipped, up to max bytes after
// decompression. A body longer than max is ErrTooLarge, never cut.
func readBody(r io.Reader, contentEncoding string, max int64) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			if isTooLarge(err) {
				return nil, ErrTooLarge
			}
			return nil, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("%w: Content-Encoding %q", ErrContentType, contentEncoding)
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, max+1))
	switch {
	case isTooLarge(err):
		return nil, ErrTooLarge
	case err != nil:
		return nil, fmt.Errorf("%w: read body: %v", ErrMalformed, err)
	case n > max:
		return nil, ErrTooLarge
	}
	return buf.Bytes(), nil
}

// isTooLarge reports http.MaxBytesReader's error.
func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

var jsonOpts = protojson.UnmarshalOptions{DiscardUnknown: true}

// DecodeLogs decodes an OTLP logs export request (ExportLogsServiceRequest,
// which has LogsData's wire form and JSON) in the given encoding. Trace and
// span ids of the JSON encoding are hex (OTLP's rule), where protojson
// reads bytes as base64: normaliseIDs puts them back.
func DecodeLogs(body []byte, encoding string) (*logspb.LogsData, error) {
	ld := &logspb.LogsData{}
	var err error
	switch encoding {
	case EncodingProtobuf:
		err = proto.Unmarshal(body, ld)
	case EncodingJSON:
		err = jsonOpts.Unmarshal(body, ld)
		if err == nil {
			err = normaliseIDs(ld)
		}
	default:
		return nil, fmt.Errorf("%w: encoding %q", ErrContentType, encoding)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return ld, nil
}

// normaliseIDs turns trace and span ids that protojson decoded from OTLP
// JSON's hex as if it were base64 back into their bytes. Hex digits are
// all base64 characters, so 32 hex digits decode to 24 bytes (16 to 12);
// encoding those bytes again gives the hex text back exactly. Ids that
// arrive as real base64 (16 or 8 bytes) are kept.
func normaliseIDs(ld *logspb.LogsData) error {
	for _, rl := range ld.GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			for _, lr := range sl.GetLogRecords() {
				var err error
				if lr.TraceId, err = hexID(lr.TraceId, 16); err != nil {
					return fmt.Errorf("traceId: %w", err)
				}
				if lr.SpanId, err = hexID(lr.SpanId, 8); err != nil {
					return fmt.Errorf("spanId: %w", err)
				}
			}
		}
	}
	return nil
}

func hexID(b []byte, size int) ([]byte, error) {
	switch len(b) {
	case 0, size:
		return b, nil
	case size * 3 / 2:
		out, err := hex.DecodeString(base64.StdEncoding.EncodeToString(b))
		if err != nil {
			return nil, errors.New("not hex")
		}
		return out, nil
	}
	return nil, fmt.Errorf("%d bytes, want %d", len(b), size)
}
