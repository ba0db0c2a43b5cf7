package otlp

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"go.opentelemetry.io/collector/pdata/plog"
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
// decompression. A body longer than max is ErrTooLarge, never cut. size
// is the announced length (-1 when unknown, as for chunked bodies): an
// uncompressed body is read into one buffer of that size instead of one
// regrown as it arrives, up to maxPresize, so that an announced length
// that never arrives cannot make the receiver hold much.
func readBody(r io.Reader, contentEncoding string, size, max int64) ([]byte, error) {
	var buf bytes.Buffer
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
		if size > 0 {
			buf.Grow(int(min(size, max, maxPresize)) + bytes.MinRead)
		}
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

// maxPresize bounds the buffer readBody sizes from an announced length.
const maxPresize = 1 << 20

// isTooLarge reports http.MaxBytesReader's error.
func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// DecodeLogs decodes an OTLP logs export request (ExportLogsServiceRequest,
// which has LogsData's wire form and JSON) in the given encoding, with the
// collector's own unmarshalers. Trace and span ids of the JSON encoding
// are hex (OTLP's rule); ids of the wrong length are malformed in both.
func DecodeLogs(body []byte, encoding string) (plog.Logs, error) {
	var ld plog.Logs
	var err error
	switch encoding {
	case EncodingProtobuf:
		ld, err = protoLogs.UnmarshalLogs(body)
	case EncodingJSON:
		ld, err = jsonLogs.UnmarshalLogs(body)
	default:
		return plog.Logs{}, fmt.Errorf("%w: encoding %q", ErrContentType, encoding)
	}
	if err != nil {
		return plog.Logs{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return ld, nil
}

// The unmarshalers keep no state between calls (unknown JSON fields are
// skipped, as OTLP asks of a receiver).
var (
	protoLogs = &plog.ProtoUnmarshaler{}
	jsonLogs  = &plog.JSONUnmarshaler{}
)
