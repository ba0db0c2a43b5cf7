package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

// EventBlock holds event rows column by column in pointer-free memory:
// strings are concatenated into one byte buffer per column, numbers are
// uint64 slices. An ingester keeps tens of thousands of rows in flight;
// as []EventRow (about 70 strings each) they were pointer-dense memory the
// garbage collector scanned again and again, which cost more CPU than the
// work itself. A block costs the collector nothing to scan.
//
// Append copies everything it needs out of the row, so the row (and the
// decoded event its strings point into) can be dropped at once. A block is
// not safe for concurrent use.
type EventBlock struct {
	n       int
	cols    []blockCol
	drop    []bool
	dropped int
}

type blockCol struct {
	buf  []byte   // strings: the bytes of every row, concatenated
	ends []uint32 // strings: end of each row in buf; arrays: end of each row in nums
	nums []uint64 // numbers, DateTime seconds, array elements
}

type colKind uint8

const (
	kString colKind = iota
	kUInt64
	kUInt32
	kUInt16
	kUInt8
	kInt32
	kInt64
	kDateTime
	kIngested // DateTime; 0 means the insert time
	kArray    // Array(UInt64)
)

// colDef reads one column's value from a row; one of s, u, t, a is set
// according to kind.
type colDef struct {
	kind colKind
	s    func(*EventRow) string
	u    func(*EventRow) uint64
	t    func(*EventRow) time.Time
	a    func(*EventRow) []uint64
}

// eventColDefs lists the columns in eventColumns order
// (TestBlockMatchesValues checks it against values()).
var eventColDefs = []colDef{
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.EventID }},                                          // event_id
	{kind: kString, s: func(r *EventRow) string { return r.EventType }},                                        // event_type
	{kind: kString, s: func(r *EventRow) string { return r.SchemaVersion }},                                    // schema_version
	{kind: kDateTime, t: func(r *EventRow) time.Time { return r.EventTime }},                                   // event_time
	{kind: kUInt32, u: func(r *EventRow) uint64 { return uint64(r.EventTimeUS) }},                              // event_time_us
	{kind: kString, s: func(r *EventRow) string { return r.Tenant }},                                           // tenant
	{kind: kString, s: func(r *EventRow) string { return r.SessionID }},                                        // session_id
	{kind: kString, s: func(r *EventRow) string { return r.RunnerID }},                                         // runner_id
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.Seq }},                                              // seq
	{kind: kString, s: func(r *EventRow) string { return r.PrevHash }},                                         // prev_hash
	{kind: kString, s: func(r *EventRow) string { return r.Hash }},                                             // hash
	{kind: kString, s: func(r *EventRow) string { return r.ActorType }},                                        // actor_type
	{kind: kString, s: func(r *EventRow) string { return r.ActorID }},                                          // actor_id
	{kind: kString, s: func(r *EventRow) string { return r.AgentName }},                                        // agent_name
	{kind: kString, s: func(r *EventRow) string { return r.AgentVersion }},                                     // agent_version
	{kind: kString, s: func(r *EventRow) string { return r.ToolCallID }},                                       // tool_call_id
	{kind: kString, s: func(r *EventRow) string { return r.ApprovalID }},                                       // approval_id
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.ParentEventID }},                                    // parent_event_id
	{kind: kString, s: func(r *EventRow) string { return r.TraceID }},                                          // trace_id
	{kind: kString, s: func(r *EventRow) string { return r.PolicyID }},                                         // policy_id
	{kind: kString, s: func(r *EventRow) string { return r.PolicySHA256 }},                                     // policy_sha256
	{kind: kString, s: func(r *EventRow) string { return r.ToolName }},                                         // tool_name
	{kind: kString, s: func(r *EventRow) string { return r.Command }},                                          // command
	{kind: kString, s: func(r *EventRow) string { return r.Cwd }},                                              // cwd
	{kind: kString, s: func(r *EventRow) string { return r.Path }},                                             // path
	{kind: kString, s: func(r *EventRow) string { return r.URL }},                                              // url
	{kind: kString, s: func(r *EventRow) string { return r.ArgumentsSHA256 }},                                  // arguments_sha256
	{kind: kString, s: func(r *EventRow) string { return r.Decision }},                                         // decision
	{kind: kString, s: func(r *EventRow) string { return r.ReasonCode }},                                       // reason_code
	{kind: kString, s: func(r *EventRow) string { return r.RuleID }},                                           // rule_id
	{kind: kString, s: func(r *EventRow) string { return r.ApprovalMode }},                                     // approval_mode
	{kind: kString, s: func(r *EventRow) string { return r.Risk }},                                             // risk
	{kind: kString, s: func(r *EventRow) string { return r.Kind }},                                             // kind
	{kind: kString, s: func(r *EventRow) string { return r.Reason }},                                           // reason
	{kind: kString, s: func(r *EventRow) string { return r.Summary }},                                          // summary
	{kind: kString, s: func(r *EventRow) string { return r.Requester }},                                        // requester
	{kind: kString, s: func(r *EventRow) string { return r.ApprovalOutcome }},                                  // approval_outcome
	{kind: kString, s: func(r *EventRow) string { return r.ApprovalScope }},                                    // approval_scope
	{kind: kString, s: func(r *EventRow) string { return r.Approver }},                                         // approver
	{kind: kDateTime, t: func(r *EventRow) time.Time { return r.ExpiresAt }},                                   // expires_at
	{kind: kDateTime, t: func(r *EventRow) time.Time { return r.DecidedAt }},                                   // decided_at
	{kind: kString, s: func(r *EventRow) string { return r.KeyID }},                                            // key_id
	{kind: kString, s: func(r *EventRow) string { return r.EgressPhase }},                                      // egress_phase
	{kind: kString, s: func(r *EventRow) string { return r.Host }},                                             // host
	{kind: kUInt16, u: func(r *EventRow) uint64 { return uint64(r.Port) }},                                     // port
	{kind: kString, s: func(r *EventRow) string { return r.ResolvedIP }},                                       // resolved_ip
	{kind: kString, s: func(r *EventRow) string { return r.Method }},                                           // method
	{kind: kString, s: func(r *EventRow) string { return r.SNI }},                                              // sni
	{kind: kUInt16, u: func(r *EventRow) uint64 { return uint64(r.StatusCode) }},                               // status_code
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.BytesSent }},                                        // bytes_sent
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.BytesReceived }},                                    // bytes_received
	{kind: kInt32, u: func(r *EventRow) uint64 { return uint64(int64(r.ExitCode)) }},                           // exit_code
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.DurationMS }},                                       // duration_ms
	{kind: kUInt8, u: func(r *EventRow) uint64 { return uint64(b2u(r.TimedOut)) }},                             // timed_out
	{kind: kString, s: func(r *EventRow) string { return r.KilledReason }},                                     // killed_reason
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.StdoutLength }},                                     // stdout_length
	{kind: kString, s: func(r *EventRow) string { return r.StdoutSHA256 }},                                     // stdout_sha256
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.StderrLength }},                                     // stderr_length
	{kind: kString, s: func(r *EventRow) string { return r.StderrSHA256 }},                                     // stderr_sha256
	{kind: kString, s: func(r *EventRow) string { return r.Error }},                                            // error
	{kind: kString, s: func(r *EventRow) string { return r.Syscall }},                                          // syscall
	{kind: kString, s: func(r *EventRow) string { return r.Severity }},                                         // severity
	{kind: kString, s: func(r *EventRow) string { return r.RuleVersion }},                                      // rule_version
	{kind: kString, s: func(r *EventRow) string { return r.GroupKey }},                                         // group_key
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.AlertCount }},                                       // alert_count
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.Suppressed }},                                       // suppressed
	{kind: kString, s: func(r *EventRow) string { return r.AlertAction }},                                      // alert_action
	{kind: kDateTime, t: func(r *EventRow) time.Time { return r.FirstSeen }},                                   // first_seen
	{kind: kDateTime, t: func(r *EventRow) time.Time { return r.LastSeen }},                                    // last_seen
	{kind: kArray, a: func(r *EventRow) []uint64 { return r.MatchedEventIDs }},                                 // matched_event_ids
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.RefEventID }},                                       // ref_event_id
	{kind: kString, s: func(r *EventRow) string { return r.ByID }},                                             // by_id
	{kind: kString, s: func(r *EventRow) string { return r.Workspace }},                                        // workspace
	{kind: kString, s: func(r *EventRow) string { return r.Image }},                                            // image
	{kind: kString, s: func(r *EventRow) string { return r.SandboxProfile }},                                   // sandbox_profile
	{kind: kString, s: func(r *EventRow) string { return r.SandboxProfileSHA256 }},                             // sandbox_profile_sha256
	{kind: kString, s: func(r *EventRow) string { return r.Operator }},                                         // operator
	{kind: kString, s: func(r *EventRow) string { return r.Mode }},                                             // mode
	{kind: kString, s: func(r *EventRow) string { return r.ClientName }},                                       // client_name
	{kind: kUInt32, u: func(r *EventRow) uint64 { return uint64(r.PID) }},                                      // pid
	{kind: kUInt32, u: func(r *EventRow) uint64 { return uint64(r.PPID) }},                                     // ppid
	{kind: kString, s: func(r *EventRow) string { return r.Exe }},                                              // exe
	{kind: kUInt8, u: func(r *EventRow) uint64 { return uint64(b2u(r.Background)) }},                           // background
	{kind: kUInt8, u: func(r *EventRow) uint64 { return uint64(b2u(r.RootProcess)) }},                          // root_process
	{kind: kUInt8, u: func(r *EventRow) uint64 { return uint64(r.Signal) }},                                    // signal
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.UserMS }},                                           // user_ms
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.SystemMS }},                                         // system_ms
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.MaxRSSKB }},                                         // max_rss_kb
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.ProcessCount }},                                     // process_count
	{kind: kString, s: func(r *EventRow) string { return r.AgentSource }},                                      // agent_source
	{kind: kString, s: func(r *EventRow) string { return r.AgentEvent }},                                       // agent_event
	{kind: kString, s: func(r *EventRow) string { return r.ConversationID }},                                   // conversation_id
	{kind: kString, s: func(r *EventRow) string { return r.PromptID }},                                         // prompt_id
	{kind: kString, s: func(r *EventRow) string { return r.AgentCallID }},                                      // agent_call_id
	{kind: kString, s: func(r *EventRow) string { return r.Model }},                                            // model
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.InputTokens }},                                      // input_tokens
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.OutputTokens }},                                     // output_tokens
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.CacheReadTokens }},                                  // cache_read_tokens
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.CacheCreationTokens }},                              // cache_creation_tokens
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.ReasoningTokens }},                                  // reasoning_tokens
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.ToolTokens }},                                       // tool_tokens
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.CostMicroUSD }},                                     // cost_micro_usd
	{kind: kString, s: func(r *EventRow) string { return r.TextMode }},                                         // text_mode
	{kind: kUInt64, u: func(r *EventRow) uint64 { return r.TextLength }},                                       // text_length
	{kind: kString, s: func(r *EventRow) string { return r.TextSHA256 }},                                       // text_sha256
	{kind: kString, s: func(r *EventRow) string { return r.Text }},                                             // text
	{kind: kString, s: func(r *EventRow) string { return r.AgentDecision }},                                    // agent_decision
	{kind: kString, s: func(r *EventRow) string { return r.DecisionSource }},                                   // decision_source
	{kind: kUInt8, u: func(r *EventRow) uint64 { return uint64(b2u(r.Success)) }},                              // success
	{kind: kString, s: func(r *EventRow) string { return r.ApprovalPolicy }},                                   // approval_policy
	{kind: kString, s: func(r *EventRow) string { return r.SandboxPolicy }},                                    // sandbox_policy
	{kind: kString, s: func(r *EventRow) string { return r.TriageAction }},                                     // triage_action
	{kind: kString, s: func(r *EventRow) string { return r.Assignee }},                                         // assignee
	{kind: kString, s: func(r *EventRow) string { return r.ScopeKind }},                                        // scope_kind
	{kind: kString, s: func(r *EventRow) string { return r.ScopeValue }},                                       // scope_value
	{kind: kString, s: func(r *EventRow) string { return unsafe.String(unsafe.SliceData(r.Raw), len(r.Raw)) }}, // raw
	{kind: kString, s: func(r *EventRow) string { return r.Source.Topic }},                                     // source_topic
	{kind: kInt32, u: func(r *EventRow) uint64 { return uint64(int64(r.Source.Partition)) }},                   // source_partition
	{kind: kInt64, u: func(r *EventRow) uint64 { return uint64(r.Source.Offset) }},                             // source_offset
	{kind: kIngested, t: func(r *EventRow) time.Time { return r.IngestedAt }},                                  // ingested_at
}

// bytesPerRow is the average string bytes per row of each column in the
// blocks inserted so far.
var bytesPerRow = make([]atomic.Int64, len(eventColDefs))

// NewEventBlock returns an empty block with room for capacity rows.
func NewEventBlock(capacity int) *EventBlock {
	b := &EventBlock{cols: make([]blockCol, len(eventColDefs))}
	for i, d := range eventColDefs {
		switch d.kind {
		case kString:
			b.cols[i].ends = make([]uint32, 0, capacity)
			// Sized from earlier blocks: growing a buffer of tens of
			// megabytes by doubling was most of Append's time.
			b.cols[i].buf = make([]byte, 0, int64(capacity)*bytesPerRow[i].Load()*9/8)
		case kArray:
			b.cols[i].ends = make([]uint32, 0, capacity)
		default:
			b.cols[i].nums = make([]uint64, 0, capacity)
		}
	}
	return b
}

// Len returns the number of rows appended, dropped ones included.
func (b *EventBlock) Len() int { return b.n }

// Rows returns the number of rows that will be inserted.
func (b *EventBlock) Rows() int { return b.n - b.dropped }

// Append copies r into the block.
func (b *EventBlock) Append(r *EventRow) {
	for i := range eventColDefs {
		d, c := &eventColDefs[i], &b.cols[i]
		switch d.kind {
		case kString:
			c.buf = append(c.buf, d.s(r)...)
			c.ends = append(c.ends, uint32(len(c.buf)))
		case kDateTime:
			c.nums = append(c.nums, uint64(dt(d.t(r)).Unix()))
		case kIngested:
			var s uint64
			if t := d.t(r); !t.IsZero() {
				s = uint64(dt(t).Unix())
			}
			c.nums = append(c.nums, s)
		case kArray:
			c.nums = append(c.nums, d.a(r)...)
			c.ends = append(c.ends, uint32(len(c.nums)))
		default:
			c.nums = append(c.nums, d.u(r))
		}
	}
	b.n++
}

// Drop leaves row i out of the insert.
func (b *EventBlock) Drop(i int) {
	if b.drop == nil {
		b.drop = make([]bool, b.n)
	}
	if !b.drop[i] {
		b.drop[i] = true
		b.dropped++
	}
}

// column returns column ci of the kept rows as the typed slice the driver
// appends. Strings alias the block's buffer and are written into *views,
// reused from column to column: the driver copies them before the next
// call, and a fresh []string per column was most of what the collector
// had to scan during an insert.
func (b *EventBlock) column(ci int, now time.Time, views *[]string) any {
	d, c := &eventColDefs[ci], &b.cols[ci]
	kept := func(f func(j int)) {
		for j := 0; j < b.n; j++ {
			if b.drop == nil || !b.drop[j] {
				f(j)
			}
		}
	}
	rows := b.Rows()
	switch d.kind {
	case kString:
		out := (*views)[:0]
		defer func() { *views = out[:0] }()
		kept(func(j int) {
			start := uint32(0)
			if j > 0 {
				start = c.ends[j-1]
			}
			if end := c.ends[j]; end > start {
				out = append(out, unsafe.String(&c.buf[start], int(end-start)))
			} else {
				out = append(out, "")
			}
		})
		return out
	case kArray:
		out := make([][]uint64, 0, rows)
		kept(func(j int) {
			start := uint32(0)
			if j > 0 {
				start = c.ends[j-1]
			}
			out = append(out, c.nums[start:c.ends[j]:c.ends[j]])
		})
		return out
	case kUInt64:
		if b.drop == nil {
			return c.nums
		}
		out := make([]uint64, 0, rows)
		kept(func(j int) { out = append(out, c.nums[j]) })
		return out
	case kUInt32:
		return convert[uint32](c.nums, kept, rows)
	case kUInt16:
		return convert[uint16](c.nums, kept, rows)
	case kUInt8:
		return convert[uint8](c.nums, kept, rows)
	case kInt32:
		return convert[int32](c.nums, kept, rows)
	case kInt64, kDateTime:
		// DateTime columns take Unix seconds as []int64.
		return convert[int64](c.nums, kept, rows)
	case kIngested:
		out := make([]int64, 0, rows)
		kept(func(j int) {
			s := int64(c.nums[j])
			if s == 0 {
				s = now.Unix()
			}
			out = append(out, s)
		})
		return out
	}
	panic(fmt.Sprintf("store: column kind %d", d.kind))
}

func convert[T uint32 | uint16 | uint8 | int32 | int64](nums []uint64, kept func(func(int)), rows int) []T {
	out := make([]T, 0, rows)
	kept(func(j int) { out = append(out, T(nums[j])) })
	return out
}

// Bytes returns the string bytes the block holds, a measure of what it
// costs to keep and to send.
func (b *EventBlock) Bytes() int {
	n := 0
	for i := range b.cols {
		n += len(b.cols[i].buf) + 8*len(b.cols[i].nums)
	}
	return n
}

// Reset empties the block and keeps its buffers, for reuse.
func (b *EventBlock) Reset() {
	for i := range b.cols {
		c := &b.cols[i]
		c.buf, c.ends, c.nums = c.buf[:0], c.ends[:0], c.nums[:0]
	}
	b.n, b.drop, b.dropped = 0, nil, 0
}

// InsertEventBlocks writes the kept rows of blocks in one insert.
func (s *Store) InsertEventBlocks(ctx context.Context, blocks ...*EventBlock) error {
	w, err := s.OpenEventStream(ctx)
	if err != nil {
		return err
	}
	for _, b := range blocks {
		if err := w.Write(b); err != nil {
			return err
		}
	}
	return w.Close()
}
