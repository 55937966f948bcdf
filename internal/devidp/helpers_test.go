package devidp

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse/internal/testutil"
)

const (
	webID     = "web"
	webSecret = "s3c:r+t/%x é" // needs form-urlencoding inside Basic (RFC 6749 §2.3.1)
	webCB     = "http://127.0.0.1:9/cb"
	webBye    = "http://127.0.0.1:9/bye"
	spaID     = "spa" // public client
	spaCB     = "http://localhost:9/spa/cb?app=1"
)

type harness struct {
	t     *testing.T
	idp   *IdP
	url   string
	clock *testutil.Clock
	hc    *http.Client
}

// newHarness serves a fresh IdP with the web and spa clients on an
// httptest server. The HTTP client does not follow redirects.
func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	clk := testutil.NewClock(time.Unix(1_800_000_000, 0))
	idp, err := New("http://"+srv.Listener.Addr().String()+"/", Options{
		Clients: []Client{
			{ID: webID, Secret: webSecret, RedirectURIs: []string{webCB}, PostLogoutRedirectURIs: []string{webBye}},
			{ID: spaID, RedirectURIs: []string{spaCB}},
		},
		Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = idp
	srv.Start()
	t.Cleanup(srv.Close)
	hc := srv.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &harness{t: t, idp: idp, url: srv.URL, clock: clk, hc: hc}
}

// get fetches u without following redirects and returns the response with
// its body read.
func (h *harness) get(u string) (*http.Response, string) {
	h.t.Helper()
	resp, err := h.hc.Get(u)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, string(b)
}

// post sends a form to path as client: web authenticates with Basic, spa
// sends only client_id, "" sends nothing extra.
func (h *harness) post(path, client string, form url.Values) (*http.Response, map[string]any) {
	h.t.Helper()
	form = cloneValues(form)
	if client == spaID {
		form.Set("client_id", spaID)
	}
	req, err := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if client == webID {
		req.SetBasicAuth(url.QueryEscape(webID), url.QueryEscape(webSecret))
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) (*http.Response, map[string]any) {
	h.t.Helper()
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			h.t.Fatalf("%s %s: %d %q: %v", req.Method, req.URL.Path, resp.StatusCode, b, err)
		}
	}
	return resp, m
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string{}, vs...)
	}
	return out
}

func pkcePair() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authQuery is a valid authorization request for client.
func authQuery(client, challenge string) url.Values {
	cb := webCB
	if client == spaID {
		cb = spaCB
	}
	return url.Values{
		"client_id": {client}, "redirect_uri": {cb}, "response_type": {"code"},
		"scope": {"openid profile"}, "state": {"st-1"}, "nonce": {"n-1"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
}

// code logs user in for client and returns the code and its PKCE verifier.
func (h *harness) code(client, user string) (code, verifier string) {
	h.t.Helper()
	verifier, challenge := pkcePair()
	q := authQuery(client, challenge)
	q.Set("login", user)
	resp, body := h.get(h.url + "/authorize?" + q.Encode())
	if resp.StatusCode != http.StatusFound {
		h.t.Fatalf("authorize: status %d: %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		h.t.Fatal(err)
	}
	return loc.Query().Get("code"), verifier
}

// exchange redeems a code at the token endpoint.
func (h *harness) exchange(client, code, verifier string) (*http.Response, map[string]any) {
	h.t.Helper()
	cb := webCB
	if client == spaID {
		cb = spaCB
	}
	return h.post("/token", client, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {cb}, "code_verifier": {verifier},
	})
}

// login runs the whole code flow and returns the token response.
func (h *harness) login(client, user string) map[string]any {
	h.t.Helper()
	code, verifier := h.code(client, user)
	resp, m := h.exchange(client, code, verifier)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("token: %d %v", resp.StatusCode, m)
	}
	return m
}

func (h *harness) refresh(client, rt string) (*http.Response, map[string]any) {
	h.t.Helper()
	return h.post("/token", client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

func (h *harness) active(token string) bool {
	h.t.Helper()
	resp, m := h.post("/introspect", webID, url.Values{"token": {token}})
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("introspect: %d %v", resp.StatusCode, m)
	}
	return m["active"] == true
}

// verify checks a JWT against the published JWKS and returns its typ and
// claims.
func (h *harness) verify(token string) (typ string, claims map[string]any) {
	h.t.Helper()
	resp, body := h.get(h.url + "/jwks")
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("jwks: %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		h.t.Fatal(err)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		h.t.Fatal(err)
	}
	hdr := jws.Signatures[0].Header
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 || keys[0].Use != "sig" || keys[0].Algorithm != "ES256" {
		h.t.Fatalf("kid %q: keys %+v", hdr.KeyID, keys)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		h.t.Fatal(err)
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		h.t.Fatal(err)
	}
	typ, _ = hdr.ExtraHeaders[jose.HeaderType].(string)
	return typ, claims
}

func wantOAuthError(t *testing.T, resp *http.Response, m map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || m["error"] != code {
		t.Fatalf("got %d %v, want %d error=%s", resp.StatusCode, m, status, code)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
	}
}
