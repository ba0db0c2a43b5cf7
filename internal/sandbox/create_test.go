package sandbox

import (
	"errors"
	"testing"
)

// Only Podman's failure to read the subordinate ids makes a create try
// again; any other failure is final at once.
func TestSubIDReadFailed(t *testing.T) {
	for msg, want := range map[string]bool{
		"keep-id requires additional UIDs or GIDs defined in /etc/subuid and /etc/subgid to function correctly: %!w(<nil>)": true,
		"cannot find UID/GID for user agentaudit-sbx: cannot read subids - check rootless mode in man pages.":               true,
		"no such image: localhost/agentaudit-sandbox:x":                                                                     false,
		"name is already in use": false,
	} {
		if got := subIDReadFailed(errors.New(msg)); got != want {
			t.Errorf("%q: %v, want %v", msg, got, want)
		}
	}
}
