package runner

import (
	"testing"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/policy"
	"github.com/agentaudit/agentaudit/internal/sandbox"
)

// policy and sandbox keep their reason codes as plain strings so they need
// not import the event model; the runner copies them into events unchanged,
// so each must be one of the schema's codes.
func TestPackageReasonsAreSchemaCodes(t *testing.T) {
	for _, r := range []string{
		policy.ReasonAllowlisted, policy.ReasonKnownSafe, policy.ReasonDeniedByRule,
		policy.ReasonDefaultDeny, policy.ReasonNeedsApproval, policy.ReasonNeverAsk,
		policy.ReasonProtectedPath, policy.ReasonPathOutsideWorkspace, policy.ReasonInvalidArguments,
		sandbox.ReasonSandboxError, sandbox.ReasonTimeout, sandbox.ReasonInvalidArguments,
		sandbox.ReasonPathOutsideWorkspace,
	} {
		if !events.ReasonCode(r).Valid() {
			t.Errorf("reason %q is not in events.ReasonCodes", r)
		}
	}
}
