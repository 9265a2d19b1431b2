package lb

import "context"

// setFirst records the member the ActiveFirst picker now tries first.
func (s *state) setFirst(name string) {
	s.firstMu.Lock()
	if s.first != name {
		s.first = name
		close(s.firstCh)
		s.firstCh = make(chan struct{})
	}
	s.firstMu.Unlock()
}

// waitFirstNot waits until the ActiveFirst picker tries another member than
// name first, or ctx ends.
func (s *state) waitFirstNot(ctx context.Context, name string) bool {
	for {
		s.firstMu.Lock()
		f, ch := s.first, s.firstCh
		s.firstMu.Unlock()
		if f != name && f != "" {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}
