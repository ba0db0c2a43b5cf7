package main

import (
	"context"
	"log/slog"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/detect"
)

// suppressions returns the option that makes `detect run` honour the
// analysts' rule suppressions, verified with the approvals service's
// public keys in keysFile (keys.json), and starts following them. Without
// keys it honours none and says so: an unverified suppression could
// silence any rule.
func suppressions(ctx context.Context, keysFile string, c detect.Config, log *slog.Logger) ([]detect.ServiceOption, error) {
	if keysFile == "" {
		log.Warn("no --trust keys.json: rule suppressions from the approvals service are not honoured")
		return nil, nil
	}
	ks, err := signing.LoadKeySet(keysFile)
	if err != nil {
		return nil, err
	}
	st := approvals.NewTriageState(ks)
	go func() {
		if err := approvals.FollowTriage(ctx, c.Brokers, c.Topics.Approvals, st, log, nil); err != nil && ctx.Err() == nil {
			log.Error("following rule suppressions stopped; suppressions known so far still apply", "err", err)
		}
	}()
	return []detect.ServiceOption{detect.WithSuppressions(st)}, nil
}
