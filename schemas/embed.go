// Package schemas holds the JSON Schemas (draft 2020-12) of the audit events
// and their examples, embedded so that every binary validates against the
// exact documents a compliance reader sees in the repository.
package schemas

import "embed"

// FS holds v1/*.json (the envelope and one schema per event type) and
// examples/{valid,invalid}/*.json with the invalid examples' manifest.
//
//go:embed v1/*.json examples/valid/*.json examples/invalid/*.json
var FS embed.FS
