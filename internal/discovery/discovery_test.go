package discovery

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gatehouse/internal/testutil"
)

func TestLookup(t *testing.T) {
	t.Parallel()
	dns := testutil.StartDNS(t)
	dns.SetIPs("app.test", "10.0.0.2", "10.0.0.1", "fd00::1")
	dns.SetIPs("a.test", "10.0.1.1")
	dns.SetIPs("b.test", "10.0.1.2")
	dns.SetSRV("_http._tcp.app.test",
		testutil.SRV{Target: "a.test", Port: 8080, Weight: 5, Priority: 10},
		testutil.SRV{Target: "b.test", Port: 8081, Weight: 1, Priority: 20})
	r := Resolver(dns.Addr)
	tests := []struct {
		name string
		cfg  Config
		want []Found
		err  bool
	}{
		{"A and AAAA", Config{Name: "app.test", Type: "A", Port: 3003},
			[]Found{{"10.0.0.1:3003", 1, false}, {"10.0.0.2:3003", 1, false}, {"[fd00::1]:3003", 1, false}}, false},
		{"SRV: ports, weights, priority", Config{Name: "_http._tcp.app.test", Type: "SRV"},
			[]Found{{"10.0.1.1:8080", 5, false}, {"10.0.1.2:8081", 1, true}}, false},
		{"unknown name", Config{Name: "nope.test", Type: "A", Port: 1}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Lookup(context.Background(), r, tt.cfg)
			if (err != nil) != tt.err {
				t.Fatalf("err %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
