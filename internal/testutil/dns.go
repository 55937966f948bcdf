package testutil

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a tiny authoritative DNS server on loopback UDP for tests: it
// answers A, AAAA and SRV questions from records the test sets, and
// NXDOMAIN otherwise.
type DNS struct {
	Addr string
	conn net.PacketConn

	mu  sync.Mutex // guards the following fields
	ips map[string][]netip.Addr
	srv map[string][]SRV
}

// SRV is one SRV record; Target must have A records of its own.
type SRV struct {
	Target                 string
	Port, Weight, Priority uint16
}

// StartDNS starts a server; it stops at test cleanup.
func StartDNS(tb testing.TB) *DNS {
	tb.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	d := &DNS{Addr: c.LocalAddr().String(), conn: c, ips: map[string][]netip.Addr{}, srv: map[string][]SRV{}}
	go d.serve()
	tb.Cleanup(func() { c.Close() })
	return d
}

func canonical(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) + "." }

// SetIPs sets the A/AAAA answers for name.
func (d *DNS) SetIPs(name string, ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var as []netip.Addr
	for _, s := range ips {
		as = append(as, netip.MustParseAddr(s))
	}
	d.ips[canonical(name)] = as
}

// SetSRV sets the SRV answers for name.
func (d *DNS) SetSRV(name string, recs ...SRV) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.srv[canonical(name)] = recs
}

func (d *DNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if out, ok := d.answer(buf[:n]); ok {
			_, _ = d.conn.WriteTo(out, from)
		}
	}
}

func (d *DNS) answer(q []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, false
	}
	question, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := canonical(question.Name.String())
	d.mu.Lock()
	ips, srvs := d.ips[name], d.srv[name]
	_, known := d.ips[name]
	_, knownSRV := d.srv[name]
	d.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}
	if !known && !knownSRV {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(question)
	_ = b.StartAnswers()
	rr := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 1}
	switch question.Type {
	case dnsmessage.TypeA:
		for _, ip := range ips {
			if ip.Is4() {
				_ = b.AResource(rr, dnsmessage.AResource{A: ip.As4()})
			}
		}
	case dnsmessage.TypeAAAA:
		for _, ip := range ips {
			if ip.Is6() {
				_ = b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: ip.As16()})
			}
		}
	case dnsmessage.TypeSRV:
		for _, s := range srvs {
			_ = b.SRVResource(rr, dnsmessage.SRVResource{Priority: s.Priority, Weight: s.Weight, Port: s.Port,
				Target: dnsmessage.MustNewName(canonical(s.Target))})
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
