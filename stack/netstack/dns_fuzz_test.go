package netstack

import (
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzDNSAnswer feeds arbitrary bytes to the answer validator and the
// record reader as an answer to an A or AAAA query for host.test with ID
// 0x1234. Neither may panic; what the validator accepts must be a
// response with the query's ID and question; what the reader returns is
// either addresses of the family asked (at most one per 16 bytes of
// message, the smallest A record) or one of its errors, never both.
func FuzzDNSAnswer(f *testing.F) {
	const id = 0x1234
	name := dnsmessage.MustNewName("host.test.")
	for _, qt := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
		q := dnsmessage.Message{Header: dnsmessage.Header{ID: id, RecursionDesired: true},
			Questions: []dnsmessage.Question{{Name: name, Type: qt, Class: dnsmessage.ClassINET}}}
		addrs := []netip.Addr{netip.MustParseAddr("198.18.5.1"), netip.MustParseAddr("2001:2::5:1")}
		f.Add(dnsAnswer(q, dnsmessage.RCodeSuccess, addrs, false), uint8(qt))
		f.Add(dnsAnswer(q, dnsmessage.RCodeSuccess, nil, true), uint8(qt))
		f.Add(dnsAnswer(q, dnsmessage.RCodeNameError, nil, false), uint8(qt))
		f.Add(dnsAnswer(q, dnsmessage.RCodeServerFailure, nil, false), uint8(qt))
		_, req, err := newRequest(id, q.Questions[0])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(req[2:], uint8(qt))
	}
	f.Add([]byte{}, uint8(dnsmessage.TypeA))
	f.Fuzz(func(t *testing.T, msg []byte, qtByte uint8) {
		qt := dnsmessage.TypeA
		if qtByte&1 == 1 {
			qt = dnsmessage.TypeAAAA
		}
		q := dnsmessage.Question{Name: name, Type: qt, Class: dnsmessage.ClassINET}
		p, h, v := matchAnswer(msg, id, q)
		if v >= numVerdicts {
			t.Fatalf("verdict %d out of range", v)
		}
		if v != answerOK {
			return
		}
		if !h.Response || h.ID != id {
			t.Fatalf("accepted %+v for ID %#x", h, id)
		}
		var check dnsmessage.Parser
		if _, err := check.Start(msg); err != nil {
			t.Fatalf("accepted a message that does not parse: %v", err)
		}
		qs, err := check.AllQuestions()
		if err != nil || len(qs) != 1 || qs[0].Type != qt || qs[0].Class != dnsmessage.ClassINET || !equalFoldName(qs[0].Name, name) {
			t.Fatalf("accepted questions %v (%v) for %v", qs, err, q)
		}
		addrs, err := readAnswer(p, h, qt)
		switch err {
		case nil:
			if len(addrs) == 0 {
				t.Fatal("no addresses and no error")
			}
		case errNoSuchHost, errLameReferral, errServerMisbehaving, errServerTemporarilyMisbehaving, errCannotUnmarshalDNSMessage:
			if addrs != nil {
				t.Fatalf("addresses %v with error %v", addrs, err)
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if len(addrs) > len(msg)/16 {
			t.Fatalf("%d addresses from %d bytes", len(addrs), len(msg))
		}
		for _, a := range addrs {
			if a.Is4() != (qt == dnsmessage.TypeA) {
				t.Fatalf("address %v for a %v query", a, qt)
			}
		}
	})
}
