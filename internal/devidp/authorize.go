package devidp

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// authorize is the authorization endpoint (RFC 6749 §4.1.1, OAuth 2.1).
// Without a login parameter it shows the login page; with login=<user> it
// issues a code and redirects back to the client.
func (i *IdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// Until client_id and redirect_uri check out, errors are shown here and
	// never redirected: the URI could be an attacker's (RFC 6749 §4.1.2.1).
	for _, k := range []string{"client_id", "redirect_uri"} {
		if len(q[k]) > 1 {
			i.messagePage(w, http.StatusBadRequest, "Bad request", "Parameter "+k+" is repeated.")
			return
		}
	}
	c, ok := i.clients[q.Get("client_id")]
	if !ok {
		i.messagePage(w, http.StatusBadRequest, "Bad request", "Unknown or missing client_id.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !slices.Contains(c.RedirectURIs, redirectURI) { // exact match (RFC 9700 §4.1.3)
		i.messagePage(w, http.StatusBadRequest, "Bad request",
			"The redirect_uri is missing or not registered for client "+c.ID+"; it must match a registered URI exactly.")
		return
	}

	fail := func(code, desc string) {
		i.redirect(w, r, redirectURI, url.Values{"error": {code}, "error_description": {desc}}, q.Get("state"))
	}
	for k, v := range q {
		if len(v) > 1 { // RFC 6749 §3.1
			fail("invalid_request", "parameter "+k+" is repeated")
			return
		}
	}
	switch {
	case q.Get("response_type") == "":
		fail("invalid_request", "response_type is missing")
		return
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	case q.Has("request"):
		fail("request_not_supported", "request objects are not supported") // OIDC Core §6
		return
	case q.Has("request_uri"):
		fail("request_uri_not_supported", "request_uri is not supported")
		return
	case q.Get("code_challenge_method") != "S256":
		// A missing method means "plain" (RFC 7636 §4.3), refused too.
		fail("invalid_request", "PKCE is required with code_challenge_method=S256; plain is refused")
		return
	case !validChallenge(q.Get("code_challenge")):
		fail("invalid_request", "code_challenge must be the base64url SHA-256 of the code_verifier (43 characters)")
		return
	}
	scope := strings.Join(strings.Fields(q.Get("scope")), " ")
	if scope == "" {
		scope = "openid"
	}

	login := q.Get("login")
	if login == "" {
		if q.Get("prompt") == "none" { // no session to reuse (OIDC Core §3.1.2.6)
			fail("login_required", "this issuer always asks who you are")
			return
		}
		i.loginPage(w, c.ID, q)
		return
	}
	u, ok := i.byName[login]
	if !ok {
		fail("access_denied", "unknown user")
		return
	}
	code := randomToken()
	now := i.now()
	rec := &codeRecord{
		clientID: c.ID, redirectURI: redirectURI, challenge: q.Get("code_challenge"),
		nonce: q.Get("nonce"), scope: scope, user: u, exp: now.Add(codeTTL),
	}
	i.mu.Lock()
	err := put(i.codes, code, rec, now, i.max)
	i.mu.Unlock()
	if err != nil {
		fail("temporarily_unavailable", "too many pending codes")
		return
	}
	i.redirect(w, r, redirectURI, url.Values{"code": {code}}, q.Get("state"))
}

// validChallenge reports whether s looks like an S256 code_challenge:
// unpadded base64url of 32 bytes.
func validChallenge(s string) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == 32
}

// redirect sends the browser to a validated redirect URI with params, the
// state (when the request had one) and iss (RFC 9207) added to its query.
func (i *IdP) redirect(w http.ResponseWriter, r *http.Request, to string, params url.Values, state string) {
	u, err := url.Parse(to) // registered, so it parses
	if err != nil {
		i.messagePage(w, http.StatusInternalServerError, "Error", "A registered redirect URI does not parse.")
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", i.issuer)
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// endSession is RP-Initiated Logout 1.0: it verifies id_token_hint (own
// key; expired tokens accepted, §2), checks post_logout_redirect_uri
// against that client's registration, ends the user's grants and redirects
// back, or shows a "logged out" page when there is nowhere to go.
func (i *IdP) endSession(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		i.messagePage(w, http.StatusBadRequest, "Bad request", "The request could not be parsed.")
		return
	}
	f := r.Form
	hint, back, clientID := f.Get("id_token_hint"), f.Get("post_logout_redirect_uri"), f.Get("client_id")
	var claims idClaims
	if hint != "" {
		if err := i.verifyOwn(hint, "JWT", &claims); err != nil || claims.Sub == "" {
			i.messagePage(w, http.StatusBadRequest, "Bad request", "The id_token_hint is not an ID token of this issuer.")
			return
		}
		if clientID != "" && clientID != claims.Aud {
			i.messagePage(w, http.StatusBadRequest, "Bad request", "The client_id does not match the id_token_hint.")
			return
		}
		clientID = claims.Aud
	}
	if back != "" {
		c, ok := i.clients[clientID]
		if !ok {
			i.messagePage(w, http.StatusBadRequest, "Bad request", "A post_logout_redirect_uri needs an id_token_hint or client_id.")
			return
		}
		if !slices.Contains(c.PostLogoutRedirectURIs, back) {
			i.messagePage(w, http.StatusBadRequest, "Bad request",
				"The post_logout_redirect_uri is not registered for client "+c.ID+".")
			return
		}
	}
	if claims.Sub != "" {
		i.mu.Lock()
		i.revokeUserLocked(claims.Sub)
		i.mu.Unlock()
	}
	if back == "" {
		i.messagePage(w, http.StatusOK, "Logged out", "You are logged out of the development issuer.")
		return
	}
	u, _ := url.Parse(back) // registered, so it parses
	if state := f.Get("state"); state != "" {
		q := u.Query()
		q.Set("state", state)
		u.RawQuery = q.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}
