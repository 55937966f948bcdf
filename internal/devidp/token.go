package devidp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// maxBody bounds POST bodies.
const maxBody = 64 << 10

// oauthError is an error response of the token, revocation and
// introspection endpoints (RFC 6749 §5.2).
type oauthError struct {
	status    int
	code      string
	desc      string
	challenge bool // add WWW-Authenticate (invalid_client, RFC 6749 §5.2)
}

func badRequest(code, desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: code, desc: desc}
}

func invalidClient(desc string) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: desc, challenge: true}
}

var errUnavailable = &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "too many live tokens"}

func writeError(w http.ResponseWriter, e *oauthError) {
	if e.challenge {
		w.Header().Set("WWW-Authenticate", `Basic realm="gatehouse-devidp"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

// parsePost reads a form body, refusing repeated parameters (RFC 6749 §3.2).
// Only the body counts: parameters in the query are ignored.
func parsePost(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		return nil, badRequest("invalid_request", "the body is not a valid form")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, badRequest("invalid_request", "parameter "+k+" is repeated")
		}
	}
	return r.PostForm, nil
}

// authenticate identifies the client by HTTP Basic (client_secret_basic;
// id and secret are form-urlencoded first, RFC 6749 §2.3.1), by
// client_id/client_secret in the body (client_secret_post), or by client_id
// alone for a public client (none).
func (i *IdP) authenticate(r *http.Request, f url.Values) (Client, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return Client{}, invalidClient("malformed basic credentials")
		}
		if f.Has("client_secret") { // one method only (RFC 6749 §2.3)
			return Client{}, badRequest("invalid_request", "more than one client authentication method")
		}
		if fid := f.Get("client_id"); fid != "" && fid != id {
			return Client{}, badRequest("invalid_request", "client_id does not match the basic credentials")
		}
	} else {
		id, secret = f.Get("client_id"), f.Get("client_secret")
	}
	c, ok := i.clients[id]
	switch {
	case id == "":
		return Client{}, invalidClient("client authentication required")
	case !ok:
		return Client{}, invalidClient("unknown client")
	case c.Secret == "" && secret != "":
		return Client{}, invalidClient("public client must not send a secret")
	case c.Secret != "" && !secretsEqual(secret, c.Secret):
		return Client{}, invalidClient("client authentication failed")
	}
	return c, nil
}

// secretsEqual compares in constant time; hashing first hides the length.
func secretsEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// token is the token endpoint (RFC 6749 §3.2).
func (i *IdP) token(w http.ResponseWriter, r *http.Request) {
	f, e := parsePost(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	gt := f.Get("grant_type")
	switch gt {
	case "authorization_code":
		i.authCodes.Add(1)
	case "refresh_token":
		i.refreshes.Add(1)
	}
	c, e := i.authenticate(r, f)
	if e != nil {
		writeError(w, e)
		return
	}
	var t issued
	switch gt {
	case "authorization_code":
		t, e = i.redeemCode(c, f)
	case "refresh_token":
		t, e = i.refreshGrant(c, f)
	case "":
		e = badRequest("invalid_request", "grant_type is missing")
	default:
		e = badRequest("unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
	if e != nil {
		writeError(w, e)
		return
	}
	resp, err := i.sign(t)
	if err != nil {
		writeError(w, &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "signing failed"})
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// redeemCode is grant_type=authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6).
func (i *IdP) redeemCode(c Client, f url.Values) (issued, *oauthError) {
	code, verifier := f.Get("code"), f.Get("code_verifier")
	if code == "" {
		return issued{}, badRequest("invalid_request", "code is missing")
	}
	if verifier == "" {
		return issued{}, badRequest("invalid_request", "code_verifier is missing (PKCE is required)")
	}
	now := i.now()
	i.mu.Lock()
	defer i.mu.Unlock()
	rec, ok := i.codes[code]
	switch {
	case !ok || !live(rec.exp, now):
		return issued{}, badRequest("invalid_grant", "code is unknown or expired")
	case rec.used: // RFC 6749 §4.1.2: revoke what the first redemption issued
		i.revokeGrantLocked(rec.grantID)
		return issued{}, badRequest("invalid_grant", "code was already used; the tokens it issued are revoked")
	case rec.clientID != c.ID:
		return issued{}, badRequest("invalid_grant", "code was issued to another client")
	case rec.redirectURI != f.Get("redirect_uri"):
		return issued{}, badRequest("invalid_grant", "redirect_uri does not match the authorization request")
	case !s256Matches(verifier, rec.challenge):
		return issued{}, badRequest("invalid_grant", "code_verifier does not match code_challenge")
	}
	g := &grant{id: randomToken(), user: rec.user, clientID: c.ID, scope: rec.scope, authTime: now, exp: now.Add(i.refresh)}
	if put(i.grants, g.id, g, now, i.max) != nil {
		return issued{}, errUnavailable
	}
	t, err := i.issueLocked(g, g.scope, rec.nonce, now)
	if err != nil {
		delete(i.grants, g.id)
		return issued{}, errUnavailable
	}
	rec.used, rec.grantID = true, g.id
	return t, nil
}

// s256Matches checks a code_verifier (RFC 7636 §4.1: 43-128 unreserved
// characters) against an S256 challenge.
func s256Matches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for _, r := range verifier {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r)) {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// refreshGrant is grant_type=refresh_token (RFC 6749 §6) with rotation:
// the presented token is spent and a new one issued; presenting a spent
// one revokes the grant (RFC 9700 §4.14.2).
func (i *IdP) refreshGrant(c Client, f url.Values) (issued, *oauthError) {
	rt := f.Get("refresh_token")
	if rt == "" {
		return issued{}, badRequest("invalid_request", "refresh_token is missing")
	}
	now := i.now()
	i.mu.Lock()
	defer i.mu.Unlock()
	rec, ok := i.refreshTok[rt]
	var g *grant
	if ok {
		g = i.grants[rec.grantID]
	}
	switch {
	case !ok || g == nil || !live(rec.exp, now):
		return issued{}, badRequest("invalid_grant", "refresh token is unknown, revoked or expired")
	case rec.rotated:
		i.revokeGrantLocked(g.id)
		return issued{}, badRequest("invalid_grant", "refresh token was already used; the whole grant is revoked")
	case g.clientID != c.ID:
		return issued{}, badRequest("invalid_grant", "refresh token was issued to another client")
	}
	scope := g.scope
	if s := strings.Join(strings.Fields(f.Get("scope")), " "); s != "" {
		for _, one := range strings.Fields(s) {
			if !hasScope(g.scope, one) { // may narrow, never widen (RFC 6749 §6)
				return issued{}, badRequest("invalid_scope", "scope "+one+" was not granted")
			}
		}
		scope = s
	}
	t, err := i.issueLocked(g, scope, "", now)
	if err != nil {
		return issued{}, errUnavailable
	}
	rec.rotated = true
	return t, nil
}

func hasScope(scopes, want string) bool {
	for _, s := range strings.Fields(scopes) {
		if s == want {
			return true
		}
	}
	return false
}

// revoke is RFC 7009 token revocation. A refresh token takes its whole
// grant with it; an access token is revoked alone. Unknown tokens get 200
// too (§2.2).
func (i *IdP) revoke(w http.ResponseWriter, r *http.Request) {
	f, e := parsePost(w, r)
	var c Client
	if e == nil {
		c, e = i.authenticate(r, f)
	}
	if e == nil && f.Get("token") == "" {
		e = badRequest("invalid_request", "token is missing")
	}
	if e != nil {
		writeError(w, e)
		return
	}
	token := f.Get("token")
	var ac accessClaims
	isJWT := i.verifyOwn(token, "at+jwt", &ac) == nil
	i.mu.Lock()
	if rec, ok := i.refreshTok[token]; ok {
		if g := i.grants[rec.grantID]; g != nil && g.clientID != c.ID {
			e = badRequest("unauthorized_client", "token was issued to another client") // §2.1
		} else {
			delete(i.refreshTok, token)
			i.revokeGrantLocked(rec.grantID)
		}
	} else if rec, ok := i.accessJTI[ac.Jti]; ok && isJWT {
		if rec.clientID != c.ID {
			e = badRequest("unauthorized_client", "token was issued to another client")
		} else {
			delete(i.accessJTI, ac.Jti)
		}
	}
	i.mu.Unlock()
	if e != nil {
		writeError(w, e)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// introspect is RFC 7662 token introspection, for confidential clients.
// Spent (rotated), revoked and expired tokens are inactive.
func (i *IdP) introspect(w http.ResponseWriter, r *http.Request) {
	f, e := parsePost(w, r)
	var c Client
	if e == nil {
		c, e = i.authenticate(r, f)
	}
	if e == nil && c.Secret == "" {
		e = invalidClient("introspection needs a confidential client") // §2.1
	}
	if e == nil && f.Get("token") == "" {
		e = badRequest("invalid_request", "token is missing")
	}
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, i.introspection(f.Get("token")))
}

func (i *IdP) introspection(token string) map[string]any {
	var ac accessClaims
	isJWT := i.verifyOwn(token, "at+jwt", &ac) == nil
	now := i.now()
	i.mu.Lock()
	defer i.mu.Unlock()
	if rec, ok := i.refreshTok[token]; ok && !rec.rotated && live(rec.exp, now) {
		if g := i.grants[rec.grantID]; g != nil {
			return map[string]any{
				"active": true, "token_type": "refresh_token", "iss": i.issuer, "sub": g.user.Name,
				"client_id": g.clientID, "scope": g.scope, "iat": rec.iat.Unix(), "exp": rec.exp.Unix(),
			}
		}
	}
	if rec, ok := i.accessJTI[ac.Jti]; ok && isJWT && live(rec.exp, now) {
		return map[string]any{
			"active": true, "token_type": "Bearer", "iss": i.issuer, "sub": rec.sub, "aud": i.audience,
			"client_id": rec.clientID, "scope": rec.scope, "roles": rec.roles, "jti": ac.Jti,
			"iat": rec.iat.Unix(), "exp": rec.exp.Unix(),
		}
	}
	return map[string]any{"active": false}
}
