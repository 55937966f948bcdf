package tlsx

import (
	"crypto/tls"
	"os"
	"testing"

	"gatehouse/internal/testutil"
)

func serial(c *tls.Certificate) int64 { return c.Leaf.SerialNumber.Int64() }

func TestStoreSNIAndReload(t *testing.T) {
	t.Parallel()
	ca := testutil.NewCA(t)
	dir := t.TempDir()
	c1, k1 := ca.Issue(t, dir, "a", 1, "gw.example", "www.gw.example")
	c2, k2 := ca.Issue(t, dir, "b", 2, "*.apps.example", "127.0.0.1")
	s := NewStore([]CertFile{{c1, k1}, {c2, k2}})
	if ok, err := s.Refresh(); !ok || err != nil {
		t.Fatalf("Refresh = %v, %v", ok, err)
	}
	for _, tc := range []struct {
		sni  string
		want int64
	}{
		{"gw.example", 1}, {"WWW.GW.EXAMPLE.", 1}, {"kline.apps.example", 2}, {"127.0.0.1", 2},
		{"deep.kline.apps.example", 1}, // a wildcard covers one label: the default answers
		{"", 1}, {"unknown.example", 1},
	} {
		got, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.sni})
		if err != nil || serial(got) != tc.want {
			t.Errorf("SNI %q: serial %d, %v; want %d", tc.sni, serial(got), err, tc.want)
		}
	}

	// A replaced file is picked up by the next Refresh.
	ca.Issue(t, dir, "a", 3, "gw.example")
	if _, err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := s.Lookup("gw.example"); serial(got) != 3 {
		t.Fatalf("after replacing the file: serial %d, want 3", serial(got))
	}
	if s.Lookup("www.gw.example") != nil {
		t.Fatal("a name the new certificate dropped is still served")
	}

	// A broken file keeps the working certificate and says why.
	testutil.WriteAtomic(t, c1, []byte("not a certificate"))
	ok, err := s.Refresh()
	if err == nil || !ok {
		t.Fatalf("broken file: complete=%v err=%v; want the old certificate kept and an error", ok, err)
	}
	if got := s.Lookup("gw.example"); serial(got) != 3 {
		t.Fatalf("broken file replaced the certificate: serial %d", serial(got))
	}
	if st := s.Status(); st[0].Error == "" || len(st[0].Names) != 1 || st[1].Error != "" {
		t.Fatalf("status %+v", st)
	}
	// A missing file at first load is an incomplete store.
	os.Remove(k2)
	if ok, err := NewStore([]CertFile{{c2, k2}}).Refresh(); ok || err == nil {
		t.Fatalf("missing key: complete=%v err=%v", ok, err)
	}
}
