package events

import (
	"encoding/json"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/schemas"
)

// TestReadmeDocumentsEverything: schemas/README.md has a section per event
// type naming every payload field, and lists every reason code.
func TestReadmeDocumentsEverything(t *testing.T) {
	b, err := os.ReadFile("../../schemas/README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, typ := range EventTypes {
		_, section, ok := strings.Cut(readme, "\n### "+typ+"\n")
		if !ok {
			t.Errorf("no section ### %s", typ)
			continue
		}
		section, _, _ = strings.Cut(section, "\n### ")
		doc, err := fs.ReadFile(schemas.FS, "v1/"+typ+".json")
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Defs struct {
				Payload struct {
					Properties map[string]json.RawMessage
				}
			} `json:"$defs"`
		}
		if err := json.Unmarshal(doc, &s); err != nil {
			t.Fatal(err)
		}
		for name := range s.Defs.Payload.Properties {
			if !strings.Contains(section, "`payload."+name+"`") {
				t.Errorf("### %s does not document payload.%s", typ, name)
			}
		}
	}
	for _, c := range ReasonCodes {
		if !strings.Contains(readme, "`"+string(c)+"`") {
			t.Errorf("reason code %s not documented", c)
		}
	}
}
