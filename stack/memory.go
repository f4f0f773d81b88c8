package stack

// Memory reports the buffer memory budget (0: none), the bytes charged to it
// now and the most charged at once (Options.MemoryBudget).
func (s *Stack) Memory() (budget, used, peak int64) {
	m := s.tcpCfg.Memory
	return m.Limit(), m.Used(), m.Peak()
}

// memReliefCh returns the channel closed when the memory budget, spent,
// frees enough for blocked writers to retry (see tcp.MemoryBudget).
func (s *Stack) memReliefCh() chan struct{} {
	s.memMu.Lock()
	defer s.memMu.Unlock()
	if s.memCh == nil {
		s.memCh = make(chan struct{})
	}
	return s.memCh
}

// memRelief wakes every writer waiting for memory. It runs on whichever
// goroutine freed the memory, possibly under a shard lock.
func (s *Stack) memRelief() {
	s.memMu.Lock()
	if s.memCh != nil {
		close(s.memCh)
		s.memCh = nil
	}
	s.memMu.Unlock()
}
