// Package reports holds the compliance reports that `query report` runs:
// one SQL file each, whose leading comment documents the report (see
// README.md for the header format).
package reports

import "embed"

// FS holds every report file (*.sql).
//
//go:embed *.sql
var FS embed.FS
