package compile

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"gatehouse/internal/config"
	"gatehouse/internal/runtime"
	"gatehouse/internal/tlsx"
)

// compileTLS builds server.tls. The certificate store is a Registry
// service keyed by its files, refreshed at every compile: a reload (the
// config or a certificate file changed) picks up new files, and a file
// that no longer loads keeps its old certificate, with a warning. At
// first load a certificate that cannot be loaded is an error.
func compileTLS(c *config.Config, reg *runtime.Registry, snap *runtime.Snapshot) error {
	t := c.Server.TLS
	if t == nil {
		return nil
	}
	f := &tlsx.Front{Redirect: *t.RedirectHTTP}
	for _, h := range t.PlainHosts {
		f.Plain = append(f.Plain, strings.ToLower(h))
	}
	if *t.HSTS.Enabled { // max_age 0 too: it tells browsers to forget the host's HSTS
		v := "max-age=" + strconv.FormatInt(int64(t.HSTS.MaxAge.D().Seconds()), 10)
		if t.HSTS.IncludeSubdomains {
			v += "; includeSubDomains"
		}
		if t.HSTS.Preload {
			v += "; preload"
		}
		f.HSTS = []string{v}
	}
	if _, port, err := net.SplitHostPort(t.Listen[0]); err == nil && port != "443" {
		f.HTTPSPort = port
	}
	if len(t.Certificates) > 0 {
		files := make([]tlsx.CertFile, len(t.Certificates))
		for i, cf := range t.Certificates {
			files[i] = tlsx.CertFile{Cert: cf.Cert, Key: cf.Key}
		}
		key := fmt.Sprintf("tls-files|%v", files)
		st := reg.Service(key, func() any { return tlsx.NewStore(files) }).(*tlsx.Store)
		if !slices.Contains(snap.Services, key) {
			snap.Services = append(snap.Services, key)
		}
		complete, err := st.Refresh()
		if !complete {
			return fmt.Errorf("server.tls.certificates: %w", err)
		}
		if err != nil {
			reg.Events().Warn("a certificate file did not load; the previous certificate stays in service", "err", err.Error())
		}
		f.Files = st
	}
	for _, ca := range t.ClientAuth {
		pool, err := tlsx.LoadPool(ca.CA)
		if err != nil {
			return fmt.Errorf("server.tls.client_auth: %w", err)
		}
		if f.ClientAuth == nil {
			f.ClientAuth = map[string]*tlsx.ClientAuth{}
		}
		// One value per entry, shared by its hosts: the engine binds a
		// request's Host to its connection's SNI when the two names'
		// values differ (tlsx.ClientAuth).
		auth := &tlsx.ClientAuth{Require: ca.Mode == "require", Pool: pool, Header: http.CanonicalHeaderKey(ca.SubjectHeader)}
		for _, h := range ca.Hosts {
			f.ClientAuth[strings.ToLower(h)] = auth
		}
	}
	if a := t.ACME; a != nil {
		ac := tlsx.ACMEConfig{Names: a.Names, Email: a.Email, Directory: a.Directory, CARoot: a.CARoot, Storage: a.Storage,
			HTTP01: slices.Contains(a.Challenges, "http-01"), TLSALPN01: slices.Contains(a.Challenges, "tls-alpn-01"),
			HTTPPort: port(c.Server.Listen), TLSPort: port(t.Listen), RenewalWindowRatio: a.RenewalWindowRatio,
			RenewCheckInterval: a.RenewCheckInterval.D()}
		key := fmt.Sprintf("acme|%+v", ac)
		mk := func() any {
			ac.Events = reg.Events()
			m, err := tlsx.NewACME(ac)
			if err != nil {
				return err
			}
			return m
		}
		m, ok := reg.Service(key, mk).(*tlsx.ACME)
		if !ok {
			return fmt.Errorf("server.tls.acme: %v", reg.Service(key, mk))
		}
		if !slices.Contains(snap.Services, key) {
			snap.Services = append(snap.Services, key)
		}
		f.Issuer = m
	}
	snap.TLS = f
	return nil
}

// port is the port of the first address in addrs (0 if none).
func port(addrs []string) int {
	if len(addrs) == 0 {
		return 0
	}
	_, p, _ := net.SplitHostPort(addrs[0])
	n, _ := strconv.Atoi(p)
	return n
}
