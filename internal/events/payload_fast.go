package events

// DecodePayloadFast decodes e.Payload like DecodePayload, but reads the
// payload types of the hot path (tool_call.requested, policy.decision,
// tool_call.completed, net.egress, process.exec) with the package's own
// JSON tree instead
// of encoding/json's reflection, which costs a detector a fifth of its time.
// Whenever the input is anything but the plain shape of its schema (an
// unknown or differently-cased key, a null, a number that does not fit)
// it hands the payload to DecodePayload, so the result is always the one
// encoding/json gives.
func (e *Envelope) DecodePayloadFast() (Payload, error) {
	if p, ok := e.decodeFast(); ok {
		return p, nil
	}
	return e.DecodePayload()
}

// decodeFast is DecodePayloadFast without the fallback: ok is false when
// the payload is not one the fast path reads exactly as encoding/json
// would. It is separate so a test can see which path an input takes.
func (e *Envelope) decodeFast() (p Payload, ok bool) {
	switch e.EventType {
	case TypeToolCallRequested, TypePolicyDecision, TypeToolCallCompleted, TypeNetEgress, TypeProcessExec:
	default:
		return nil, false
	}
	t := treePool.Get().(*jtree)
	defer treePool.Put(t)
	if t.parse(e.Payload) != nil || t.nodes[0].kind != jObject {
		return nil, false
	}
	d := fastDecoder{t: t, all: string(t.data)}
	switch e.EventType {
	case TypeToolCallRequested:
		p = d.toolCallRequested(0)
	case TypePolicyDecision:
		p = d.policyDecision(0)
	case TypeToolCallCompleted:
		p = d.toolCallCompleted(0)
	case TypeNetEgress:
		p = d.netEgress(0)
	case TypeProcessExec:
		p = d.processExec(0)
	}
	if d.bail {
		return nil, false
	}
	return p, true
}

// fastDecoder reads values out of a parsed tree. bail records that the
// input is not one it reads exactly as encoding/json would.
type fastDecoder struct {
	t    *jtree
	all  string // the payload as one string: fields are substrings of it
	bail bool
}

// object calls f for each member of object node i; f returns false for a
// key it does not know.
func (d *fastDecoder) object(i int, f func(key string, v int) bool) {
	if d.t.nodes[i].kind != jObject {
		d.bail = true
		return
	}
	d.t.members(i, func(k string, v int) {
		if !d.bail && !f(k, v) {
			d.bail = true
		}
	})
}

func (d *fastDecoder) str(i int) string {
	n := &d.t.nodes[i]
	if n.kind != jString {
		d.bail = true
		return ""
	}
	if n.esc {
		return string(unescape(nil, d.t.raw(i)))
	}
	return d.all[n.start:n.end]
}

func (d *fastDecoder) boolean(i int) bool {
	switch d.t.nodes[i].kind {
	case jTrue:
		return true
	case jFalse:
		return false
	}
	d.bail = true
	return false
}

func (d *fastDecoder) integer(i int, min, max int64) int64 {
	n := &d.t.nodes[i]
	if n.kind != jNumber || !n.integer {
		d.bail = true
		return 0
	}
	v, ok := parseInt(d.t.raw(i))
	if !ok || v < min || v > max {
		d.bail = true
		return 0
	}
	return v
}

// uinteger reads an unsigned integer up to max (within int64: larger
// values go to encoding/json).
func (d *fastDecoder) uinteger(i int, max int64) uint64 {
	if n := &d.t.nodes[i]; n.kind == jNumber && d.t.data[n.start] == '-' {
		d.bail = true // encoding/json refuses even -0 for an unsigned field
		return 0
	}
	return uint64(d.integer(i, 0, max))
}

func (d *fastDecoder) strings(i int) []string {
	n := &d.t.nodes[i]
	if n.kind != jArray {
		d.bail = true
		return nil
	}
	out := make([]string, 0, n.n)
	for c, k := i+1, int32(0); k < n.n; k++ {
		out = append(out, d.str(c))
		c = int(d.t.nodes[c].next)
	}
	return out
}

const (
	maxInt64  = 1<<63 - 1
	maxUint16 = 1<<16 - 1
	intBits   = 32 << (^uint(0) >> 63)
	maxInt    = 1<<(intBits-1) - 1
	minInt    = -1 << (intBits - 1)
)

func (d *fastDecoder) toolCallRequested(i int) *ToolCallRequested {
	p := &ToolCallRequested{}
	d.object(i, func(k string, v int) bool {
		switch k {
		case "tool_name":
			p.ToolName = d.str(v)
		case "arguments":
			d.arguments(v, &p.Arguments)
		case "arguments_sha256":
			p.ArgumentsSHA256 = d.str(v)
		case "arguments_truncated":
			p.ArgumentsTruncated = d.boolean(v)
		case "client_meta":
			if p.ClientMeta == nil {
				p.ClientMeta = &ClientMeta{}
			}
			d.clientMeta(v, p.ClientMeta)
		default:
			return false
		}
		return true
	})
	return p
}

func (d *fastDecoder) clientMeta(i int, m *ClientMeta) {
	d.object(i, func(k string, v int) bool {
		switch k {
		case "call_id":
			m.CallID = d.str(v)
		case "tool_use_id":
			m.ToolUseID = d.str(v)
		case "session_id":
			m.SessionID = d.str(v)
		case "thread_id":
			m.ThreadID = d.str(v)
		case "turn_id":
			m.TurnID = d.str(v)
		case "traceparent":
			m.Traceparent = d.str(v)
		default:
			return false
		}
		return true
	})
}

func (d *fastDecoder) arguments(i int, a *ToolArguments) {
	d.object(i, func(k string, v int) bool {
		switch k {
		case "argv":
			a.Argv = d.strings(v)
		case "command":
			a.Command = d.str(v)
		case "cwd":
			a.Cwd = d.str(v)
		case "path":
			a.Path = d.str(v)
		case "url":
			a.URL = d.str(v)
		case "content_length":
			n := d.uinteger(v, maxInt64)
			a.ContentLength = &n
		case "content_sha256":
			a.ContentSHA256 = d.str(v)
		case "env_keys":
			a.EnvKeys = d.strings(v)
		case "timeout_ms":
			a.TimeoutMS = d.uinteger(v, maxInt64)
		default:
			return false
		}
		return true
	})
}

func (d *fastDecoder) policyDecision(i int) *PolicyDecision {
	p := &PolicyDecision{}
	d.object(i, func(k string, v int) bool {
		switch k {
		case "decision":
			p.Decision = Decision(d.str(v))
		case "reason_code":
			p.ReasonCode = ReasonCode(d.str(v))
		case "rule_id":
			p.RuleID = d.str(v)
		case "justification":
			p.Justification = d.str(v)
		case "approval_mode":
			p.ApprovalMode = ApprovalMode(d.str(v))
		case "risk":
			p.Risk = Risk(d.str(v))
		case "eval_us":
			p.EvalMicros = d.uinteger(v, maxInt64)
		default:
			return false
		}
		return true
	})
	return p
}

func (d *fastDecoder) output(i int, o *Output) {
	d.object(i, func(k string, v int) bool {
		switch k {
		case "length":
			o.Length = d.uinteger(v, maxInt64)
		case "sha256":
			o.SHA256 = d.str(v)
		case "text":
			o.Text = d.str(v)
		case "truncated":
			o.Truncated = d.boolean(v)
		default:
			return false
		}
		return true
	})
}

func (d *fastDecoder) toolCallCompleted(i int) *ToolCallCompleted {
	p := &ToolCallCompleted{}
	d.object(i, func(k string, v int) bool {
		switch k {
		case "exit_code":
			p.ExitCode = int(d.integer(v, minInt, maxInt))
		case "duration_ms":
			p.DurationMS = d.uinteger(v, maxInt64)
		case "timed_out":
			p.TimedOut = d.boolean(v)
		case "killed_reason":
			p.KilledReason = d.str(v)
		case "stdout":
			d.output(v, &p.Stdout)
		case "stderr":
			d.output(v, &p.Stderr)
		case "reason_code":
			p.ReasonCode = ReasonCode(d.str(v))
		case "error":
			p.Error = d.str(v)
		case "signal":
			p.Signal = int(d.integer(v, minInt, maxInt))
		case "rusage":
			if p.Rusage == nil {
				p.Rusage = &ResourceUsage{}
			}
			d.rusage(v, p.Rusage)
		case "leftovers_killed":
			p.LeftoversKilled = d.uinteger(v, maxInt64)
		default:
			return false
		}
		return true
	})
	return p
}

func (d *fastDecoder) rusage(i int, u *ResourceUsage) {
	d.object(i, func(k string, v int) bool {
		switch k {
		case "user_ms":
			u.UserMS = d.uinteger(v, maxInt64)
		case "system_ms":
			u.SystemMS = d.uinteger(v, maxInt64)
		case "max_rss_kb":
			u.MaxRSSKB = d.uinteger(v, maxInt64)
		default:
			return false
		}
		return true
	})
}

func (d *fastDecoder) processExec(i int) *ProcessExec {
	p := &ProcessExec{}
	d.object(i, func(k string, v int) bool {
		switch k {
		case "pid":
			p.PID = int(d.integer(v, minInt, maxInt))
		case "ppid":
			p.PPID = int(d.integer(v, minInt, maxInt))
		case "argv":
			p.Argv = d.strings(v)
		case "argv_truncated":
			p.ArgvTruncated = d.boolean(v)
		case "exe":
			p.Exe = d.str(v)
		case "cwd":
			p.Cwd = d.str(v)
		case "decision":
			p.Decision = Decision(d.str(v))
		case "reason_code":
			p.ReasonCode = ReasonCode(d.str(v))
		case "rule_id":
			p.RuleID = d.str(v)
		case "background":
			p.Background = d.boolean(v)
		case "root":
			p.Root = d.boolean(v)
		default:
			return false
		}
		return true
	})
	return p
}

func (d *fastDecoder) netEgress(i int) *NetEgress {
	p := &NetEgress{}
	d.object(i, func(k string, v int) bool {
		switch k {
		case "phase":
			p.Phase = d.str(v)
		case "host":
			p.Host = d.str(v)
		case "port":
			p.Port = uint16(d.uinteger(v, maxUint16))
		case "resolved_ip":
			p.ResolvedIP = d.str(v)
		case "method":
			p.Method = d.str(v)
		case "sni":
			p.SNI = d.str(v)
		case "decision":
			p.Decision = Decision(d.str(v))
		case "reason_code":
			p.ReasonCode = ReasonCode(d.str(v))
		case "rule_id":
			p.RuleID = d.str(v)
		case "status_code":
			p.StatusCode = uint16(d.uinteger(v, maxUint16))
		case "bytes_sent":
			p.BytesSent = d.uinteger(v, maxInt64)
		case "bytes_received":
			p.BytesReceived = d.uinteger(v, maxInt64)
		case "duration_ms":
			p.DurationMS = d.uinteger(v, maxInt64)
		default:
			return false
		}
		return true
	})
	return p
}
