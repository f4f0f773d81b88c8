package tcp

// State is a TCP connection state (RFC 9293 §3.3.2).
type State uint8

// The eleven states of RFC 9293 §3.3.2.
const (
	StateClosed State = iota
	StateListen
	StateSynSent
	StateSynReceived
	StateEstablished
	StateFinWait1
	StateFinWait2
	StateCloseWait
	StateClosing
	StateLastAck
	StateTimeWait
	numStates
)

// stateNames are the names ss(8) prints for each state.
var stateNames = [numStates]string{
	StateClosed:      "CLOSE",
	StateListen:      "LISTEN",
	StateSynSent:     "SYN-SENT",
	StateSynReceived: "SYN-RECV",
	StateEstablished: "ESTAB",
	StateFinWait1:    "FIN-WAIT-1",
	StateFinWait2:    "FIN-WAIT-2",
	StateCloseWait:   "CLOSE-WAIT",
	StateClosing:     "CLOSING",
	StateLastAck:     "LAST-ACK",
	StateTimeWait:    "TIME-WAIT",
}

// String returns the state's name as ss(8) prints it (ESTAB, SYN-SENT, ...).
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// canSendData reports whether application data (and a FIN) may be transmitted.
func (s State) canSendData() bool {
	switch s {
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
		return true
	}
	return false
}

// canReceiveData reports whether segment text is accepted (RFC 9293
// §3.10.7.4, seventh step).
func (s State) canReceiveData() bool {
	switch s {
	case StateEstablished, StateFinWait1, StateFinWait2:
		return true
	}
	return false
}
