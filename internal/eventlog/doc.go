// Package eventlog writes audit events to Kafka and reads them back: the
// Producer stamps each event on its chain and returns only once every
// in-sync replica holds it (audit before act), spooling to local disk what
// already happened while Kafka is away; the Consumer hands polled batches to
// a handler and commits them only after it succeeded; ReadSession reads one
// session's events back from the events topic.
//
// A runner records a tool call before it runs it:
//
//	p, err := eventlog.NewProducer(ctx, brokers, runnerID,
//		eventlog.WithSpool(spoolDir, 256<<20))
//	defer p.Close(ctx)
//	env, err := events.New(events.ToolCallRequested{...}, events.WithIDs(ids), ...)
//	if err := p.Emit(ctx, env); errors.Is(err, eventlog.ErrAuditUnavailable) {
//		return deny(events.ReasonAuditUnavailable) // not recorded: not run
//	}
//	// ... run the call, then record its outcome, spooled if need be:
//	err = p.EmitAfter(ctx, completed)
//
// A service consumes the topics and commits what its handler took:
//
//	c, err := eventlog.NewConsumer(brokers, group, []string{eventlog.DefaultTopics.Events})
//	defer c.Close()
//	err = c.Run(ctx, func(ctx context.Context, recs []*kgo.Record) error { ... })
//
// Event types, encoding, chains and validation are package events'.
package eventlog
