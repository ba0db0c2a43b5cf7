package sandbox

// Detach ends the runner's connection to the sandbox's supervisor without
// waiting for Podman: the supervisor kills every process in the sandbox
// and exits (it fails closed when its runner goes away), so nothing the
// session started runs on. Close still removes the container; Detach lets
// a runner record a session's end first, which Podman's removal (100–300
// ms here) would otherwise delay past an agent's shutdown budget.
func (s *Session) Detach() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || s.conn == nil {
		return nil
	}
	return s.conn.Close()
}
