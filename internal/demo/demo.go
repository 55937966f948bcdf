// Package demo runs the shipped route table against built-in upstreams
// that echo what they receive, so `gatehouse demo` shows routing, prefix
// handling and forwarding headers with nothing else installed.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gatehouse"
	"gatehouse/internal/config"
	"gatehouse/internal/devidp"
)

// Echo is the reply of a demo upstream.
type Echo struct {
	Upstream string              `json:"upstream"`
	Method   string              `json:"method"`
	URI      string              `json:"uri"`
	Host     string              `json:"host"`
	Headers  map[string][]string `json:"headers"`
}

// EchoHandler answers every request with an Echo naming upstream.
func EchoHandler(upstream string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(Echo{Upstream: upstream, Method: r.Method, URI: r.RequestURI, Host: r.Host, Headers: r.Header})
	})
}

// Setup prepares the shipped config for the demo: each upstream's targets
// become one echo server on a free loopback port (started under ctx), the
// landing page is unpacked to a temp dir, and the listener is listen. It
// returns the config and a cleanup func.
func Setup(ctx context.Context, listen string) (*config.Document, func(), error) {
	dir, err := os.MkdirTemp("", "gatehouse-demo-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := unpack(dir); err != nil {
		cleanup()
		return nil, nil, err
	}
	src, err := withLogin(ctx, listen)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	doc, err := config.Parse("gatehouse.yaml (built in, with demo login)", src, dir)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	doc.Config.Server.Listen = []string{listen}
	doc.Config.Admin.Listen = "127.0.0.1:0" // a free port, printed in the banner
	names := make([]string, 0, len(doc.Config.Upstreams))
	for n := range doc.Config.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		srv := &http.Server{Handler: EchoHandler(n), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		context.AfterFunc(ctx, func() { srv.Close() })
		doc.Config.Upstreams[n].Targets = []config.Target{{Address: ln.Addr().String(), Weight: 1}}
	}
	return doc, cleanup, nil
}

func unpack(dir string) error {
	return fs.WalkDir(gatehouse.Site, "www", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, p)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(gatehouse.Site, p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

// Banner is what `gatehouse demo` prints once it listens on addr.
func Banner(w io.Writer, addr string, admin net.Addr, doc *config.Document) {
	base := "http://" + addr
	fmt.Fprintf(w, "Gatehouse demo: the shipped route table with echo upstreams, on %s\n\n", base)
	fmt.Fprintf(w, "Upstreams (built-in echo servers):\n")
	names := make([]string, 0, len(doc.Config.Upstreams))
	for n := range doc.Config.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, doc.Config.Upstreams[n].Targets[0].Address)
	}
	fmt.Fprintf(w, "\nTry:\n")
	for _, ex := range [][2]string{
		{"/flow/board?page=2", "flow-service sees /flow/board (prefix kept)"},
		{"/admin/users", "401: /admin needs a login (below)"},
		{"/kline/chart", "kline-service"},
		{"/api/kline/v1/ticks", "kline-service sees /kline/api/v1/ticks"},
		{"/api/nope/x", "404: unknown API service"},
		{"/admin/../oauth/login", "normalized to /oauth/login before routing"},
		{"/", "the landing page (static)"},
	} {
		fmt.Fprintf(w, "  curl -i --path-as-is %-42s # %s\n", base+ex[0], ex[1])
	}
	if l := doc.Config.Auth.Login; l != nil {
		fmt.Fprintf(w, "\nLogin: open %s/admin/ in a browser. /admin needs role admin; the built-in\n", base)
		fmt.Fprintf(w, "development issuer at %s (NOT FOR PRODUCTION: anyone can log in)\n", doc.Config.Auth.Issuers["demo"].Issuer)
		fmt.Fprintf(w, "lets you pick alice (admin: allowed) or bob (no admin role: 403). Log out at %s%s.\n", base, l.LogoutPath)
	}
	if admin != nil {
		fmt.Fprintf(w, "\nStatus page: http://%s/   metrics: http://%s/metrics\n", admin, admin)
	}
	fmt.Fprintf(w, "\nAccess log lines follow. Ctrl-C stops.\n\n")
}

// adminRoute is the admin route of the shipped config, which the demo puts
// behind login.
const adminRoute = `  - name: admin
    match: { path_prefix: /admin }
    upstream: admin-portal
`

// apiRoute begins the shipped config's api route, whose admin service
// sends admin-portal its /admin/api paths: with login on /admin they need
// the same auth (config refuses one upstream path under two policies),
// given by a route for /api/admin of their own, placed before it.
const apiRoute = "  - name: api\n"

// adminAuth is the demo's policy for the admin app, its API included.
const adminAuth = "    auth: { accept: [session, bearer], roles: { any_of: [admin] } }\n"

// withLogin returns the shipped config with browser login on /admin,
// against a development issuer (internal/devidp) started on a free
// loopback port under ctx: alice has role admin, bob does not. The
// session cookie and client secrets are random per run.
func withLogin(ctx context.Context, listen string) ([]byte, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("demo: -listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // where the banner sends the browser
	}
	origin := "http://" + net.JoinHostPort(host, port)
	secret := rand.Text()
	idp, err := devidp.Start(ctx, "127.0.0.1:0", devidp.Options{Clients: []devidp.Client{{
		ID: "gatehouse-demo", Secret: secret, RedirectURIs: []string{origin + "/_gatehouse/callback"},
		PostLogoutRedirectURIs: []string{origin + "/"}}}})
	if err != nil {
		return nil, fmt.Errorf("demo: development issuer: %w", err)
	}
	src := string(gatehouse.DefaultConfig)
	if !strings.Contains(src, adminRoute) || !strings.Contains(src, apiRoute) {
		return nil, errors.New("demo: the shipped gatehouse.yaml no longer has the admin and api routes internal/demo expects")
	}
	src = strings.Replace(src, adminRoute, adminRoute+adminAuth, 1)
	src = strings.Replace(src, apiRoute, `  - name: admin-api
    match: { path_prefix: /api/admin }
    upstream: admin-portal
    rewrite: /admin/api
`+adminAuth+apiRoute, 1)
	src += fmt.Sprintf(`
# Added by gatehouse demo: browser login against a development issuer.
auth:
  issuers:
    demo: { issuer: %q, audience: gatehouse }
  login:
    client_id: gatehouse-demo
    client_secret: %q
    redirect_url: %s/_gatehouse/callback
    cookie_secret: %q
`, idp.Issuer(), secret, origin, rand.Text()+rand.Text())
	return []byte(src), nil
}
