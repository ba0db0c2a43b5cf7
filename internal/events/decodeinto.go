package events

// DecodeInto is Decode for a caller that reads each event once and drops
// it, such as a loader that copies the fields into column buffers: it
// validates data exactly as Decode does (the same verdict, the same
// *ValidationError), but fills the caller's *env instead of returning a
// new Envelope, and on canonical events (all that producers write) it
// allocates nothing.
//
// The contract, which is what makes it free:
//   - Every field of *env is overwritten; nothing of the event it held
//     before survives. On error *env is the zero Envelope.
//   - env's strings and Payload alias data: they are valid only while
//     data is alive and unchanged. Copy whatever must outlive the next
//     reuse of data. Strings with JSON escapes, and every field of an
//     event that is not canonical, are copied and do not alias data.
//   - Payload's capacity ends with it: appending to it never writes into
//     data.
//   - When env.Agent or env.Policy is non-nil on entry, the Agent or
//     PolicyRef it points to is overwritten in place and reused, not
//     reallocated: do not point them at values kept elsewhere.
//
// Use Decode when the Envelope is kept or data is reused.
func DecodeInto(env *Envelope, data []byte) error {
	reg, err := registry()
	if err != nil {
		*env = Envelope{}
		return err
	}
	if reg.canon.decodeInto(env, data) {
		return nil // canonical and valid; anything else is judged below
	}
	d, err := reg.decodeTree(data)
	if err != nil {
		*env = Envelope{}
		return err
	}
	*env = *d
	return nil
}
