package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"gatehouse/internal/phase"
)

// flowState is what a login flow's cookie carries, encrypted.
type flowState struct {
	Verifier string    `json:"v"`   // PKCE code_verifier
	Nonce    string    `json:"n"`   // OpenID Connect nonce
	Return   string    `json:"r"`   // path to return to (SafeReturn)
	Issued   time.Time `json:"iat"` // bounds the flow by FlowTimeout
}

// maxFlows bounds the login-flow cookies a browser holds at once; older
// ones are cleared when a new flow starts.
const maxFlows = 4

// Challenge starts a login for a navigation that needs a session: it sets
// a flow cookie and redirects (302) to the issuer's authorization
// endpoint. It returns an error, writing nothing, when the issuer's
// metadata cannot be had.
func (l *Login) Challenge(w http.ResponseWriter, r *http.Request, returnTo string) error {
	md, err := l.metadata(r.Context())
	if err != nil {
		return phase.NewError(phase.KindAuthUnavailable, "login is unavailable; try again shortly", err)
	}
	ret, ok := SafeReturn(returnTo)
	if !ok {
		ret = "/"
	}
	state := randomID(32)
	fs := flowState{Verifier: oauth2.GenerateVerifier(), Nonce: randomID(32), Return: ret, Issued: l.cfg.Now()}
	plain, _ := json.Marshal(fs)
	name := l.flowPfx + l.keys.flowSuffix(state)

	// The oldest flows of this browser beyond maxFlows-1 are cleared.
	// Browsers send cookies of one path oldest first (RFC 6265 §5.4).
	var flows []string
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, l.flowPfx) {
			flows = append(flows, c.Name)
		}
	}
	for i := 0; i < len(flows)-(maxFlows-1); i++ {
		l.setCookie(w, flows[i], "", -1)
	}
	l.setCookie(w, name, seal(l.keys.flow, plain, name), l.cfg.FlowTimeout)

	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(fs.Verifier), oauth2.SetAuthURLParam("nonce", fs.Nonce)}
	if l.cfg.Resource != "" {
		opts = append(opts, oauth2.SetAuthURLParam("resource", l.cfg.Resource))
	}
	noStore(w)
	w.Header().Set("Location", l.oauth2Config(md).AuthCodeURL(state, opts...))
	w.WriteHeader(http.StatusFound)
	return nil
}

// loginHandler serves login_path: GET ?rd=/path starts a login (or, with a
// live session, just goes to rd).
type loginHandler struct{ l *Login }

func (h loginHandler) ServeLocal(rc *phase.RequestCtx, w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return &phase.Error{Kind: phase.KindMethod, Header: http.Header{"Allow": {"GET, HEAD"}}}
	}
	rd := r.URL.Query().Get("rd")
	if rd == "" {
		rd = "/"
	}
	ret, ok := SafeReturn(rd)
	if !ok {
		return phase.NewError(phase.KindBadRequest, "rd must be a path on this site", nil)
	}
	if a, err := h.l.Session(rc, r); err == nil && a != nil {
		noStore(w)
		http.Redirect(w, r, ret, http.StatusFound)
		return nil
	}
	return h.l.Challenge(w, r, ret)
}

// LoginHandler, CallbackHandler and LogoutHandler serve login's paths.
func (l *Login) LoginHandler() phase.Handler    { return loginHandler{l} }
func (l *Login) CallbackHandler() phase.Handler { return callbackHandler{l} }
func (l *Login) LogoutHandler() phase.Handler   { return logoutHandler{l} }

type callbackHandler struct{ l *Login }

// ServeLocal completes a login: it checks the authorization response
// against the flow cookie named by its state, redeems the code with the
// PKCE verifier, verifies the ID token (signature, iss, aud, azp, nonce,
// exp), starts a new session and redirects to the saved path.
func (h callbackHandler) ServeLocal(rc *phase.RequestCtx, w http.ResponseWriter, r *http.Request) error {
	l := h.l
	if r.Method != http.MethodGet {
		return &phase.Error{Kind: phase.KindMethod, Header: http.Header{"Allow": {"GET"}}}
	}
	q, err := parseCallback(r.URL.RawQuery)
	if err != nil {
		return l.loginFailed(rc, w, "", "malformed authorization response", err)
	}
	fs, cookieName, err := l.openFlow(r, q.state)
	if err != nil {
		return l.loginFailed(rc, w, "", "this login expired or was started in another browser", err)
	}
	l.setCookie(w, cookieName, "", -1) // one use
	if q.errCode != "" {
		return l.loginFailed(rc, w, fs.Return, "the issuer refused the login ("+q.errCode+")", errors.New("authorization error "+q.errCode))
	}
	md, err := l.metadata(r.Context())
	if err != nil {
		return phase.NewError(phase.KindAuthUnavailable, "login is unavailable; try again shortly", err)
	}
	// RFC 9207: an issuer that says it sends iss must send its own; one
	// that sends iss anyway must send its own too (mix-up defence).
	if (md.ISSParameter || q.hasIss) && q.iss != l.cfg.Issuer {
		return l.loginFailed(rc, w, fs.Return, "the authorization response names another issuer", fmt.Errorf("iss %q", q.iss))
	}
	if q.code == "" {
		return l.loginFailed(rc, w, fs.Return, "the authorization response has no code", nil)
	}
	ctx, cancel := context.WithTimeout(l.clientCtx(r.Context()), 10*time.Second)
	defer cancel()
	opts := []oauth2.AuthCodeOption{oauth2.VerifierOption(fs.Verifier)}
	if l.cfg.Resource != "" {
		opts = append(opts, oauth2.SetAuthURLParam("resource", l.cfg.Resource))
	}
	tok, err := l.oauth2Config(md).Exchange(ctx, q.code, opts...)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			return l.loginFailed(rc, w, fs.Return, "the issuer refused the code ("+re.ErrorCode+")", err)
		}
		return phase.NewError(phase.KindAuthUnavailable, "login is unavailable; try again shortly", err)
	}
	idt, _ := tok.Extra("id_token").(string)
	sub, name, err := l.verifyIDToken(r.Context(), idt, fs.Nonce)
	if err != nil {
		return l.loginFailed(rc, w, fs.Return, "the ID token did not verify", err)
	}
	// A new session id at every login; the one the browser had, if any, ends.
	if old, err := l.cookieID(r); err == nil {
		l.end(r.Context(), storeKey(old))
	}
	id := randomID(32)
	now := l.cfg.Now()
	s := &Record{Subject: sub, Name: name, IDToken: idt, Created: now, Until: now.Add(l.cfg.MaxLifetime)}
	s.setToken(tok, now)
	if err := l.save(r.Context(), storeKey(id), s); err != nil {
		return phase.NewError(phase.KindAuthUnavailable, "sessions are unavailable; try again shortly", err)
	}
	rc.Subject, rc.Auth, rc.AuthReason = sub, "allow", "login"
	l.setCookie(w, l.cookie, l.keys.sessionCookie(id), s.Until.Sub(now))
	noStore(w)
	w.Header().Set("Location", fs.Return)
	w.WriteHeader(http.StatusFound)
	return nil
}

// callbackParams are the authorization response's parameters. Each must
// appear at most once (RFC 6749 §3.1: parameters must not repeat).
type callbackParams struct {
	state, code, iss, errCode string
	hasIss                    bool
}

func parseCallback(raw string) (callbackParams, error) {
	var p callbackParams
	if len(raw) > 8192 {
		return p, errors.New("query too long")
	}
	seen := map[string]bool{}
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		key, err1 := url.QueryUnescape(k)
		val, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return p, errors.New("bad escape")
		}
		switch key {
		case "state", "code", "iss", "error":
		default:
			continue
		}
		if seen[key] {
			return p, fmt.Errorf("%s repeated", key)
		}
		seen[key] = true
		switch key {
		case "state":
			p.state = val
		case "code":
			p.code = val
		case "iss":
			p.iss, p.hasIss = val, true
		case "error":
			p.errCode = val
		}
	}
	if p.state == "" {
		return p, errors.New("no state")
	}
	// error is an ASCII code from a fixed set (RFC 6749 §4.1.2.1); keep
	// whatever else out of pages and logs.
	if p.errCode != "" && strings.Trim(p.errCode, "abcdefghijklmnopqrstuvwxyz_") != "" {
		p.errCode = "invalid_error_code"
	}
	return p, nil
}

// openFlow finds and opens the flow cookie of state.
func (l *Login) openFlow(r *http.Request, state string) (flowState, string, error) {
	var fs flowState
	if len(state) != 43 {
		return fs, "", errCookie
	}
	name := l.flowPfx + l.keys.flowSuffix(state)
	c, err := r.Cookie(name)
	if err != nil {
		return fs, "", err
	}
	plain, err := open(l.keys.flow, c.Value, name)
	if err != nil {
		return fs, name, err
	}
	if err := json.Unmarshal(plain, &fs); err != nil {
		return fs, name, err
	}
	if age := l.cfg.Now().Sub(fs.Issued); age < 0 || age > l.cfg.FlowTimeout {
		return fs, name, errors.New("login flow expired")
	}
	if _, ok := SafeReturn(fs.Return); !ok {
		fs.Return = "/"
	}
	return fs, name, nil
}

// verifyIDToken checks an ID token (OpenID Connect Core §3.1.3.7) and
// returns its subject and the person's name for pages (displayName).
func (l *Login) verifyIDToken(ctx context.Context, idt, nonce string) (sub, name string, err error) {
	if idt == "" {
		return "", "", errors.New("no id_token in the token response")
	}
	claims, err := l.cfg.IDTokens.Verify(ctx, idt)
	if err != nil {
		return "", "", err
	}
	if n, _ := claims["nonce"].(string); n != nonce {
		return "", "", errors.New("id_token nonce does not match")
	}
	azp, hasAzp := claims["azp"].(string)
	if hasAzp && azp != l.cfg.ClientID {
		return "", "", errors.New("id_token azp is another client")
	}
	if auds, ok := claims["aud"].([]any); ok && len(auds) > 1 && !hasAzp {
		return "", "", errors.New("id_token has several audiences and no azp")
	}
	sub, _ = claims["sub"].(string)
	if sub == "" {
		return "", "", errors.New("id_token has no sub")
	}
	return sub, displayName(claims), nil
}

// loginFailed answers a failed login with a small page (403) linking to a
// fresh start; the reason shown is fixed text, the cause goes to the log.
func (l *Login) loginFailed(rc *phase.RequestCtx, w http.ResponseWriter, ret, msg string, cause error) error {
	rc.Auth, rc.AuthReason = "deny", "login failed: "+msg
	if cause != nil {
		l.cfg.Events.Info("login failed", "request_id", rc.RequestID, "reason", msg, "err", cause)
	}
	if ret == "" {
		ret = "/"
	}
	SetPageHeaders(w.Header())
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusForbidden)
	start := l.cfg.LoginPath + "?rd=" + url.QueryEscape(ret)
	fmt.Fprintf(w, "<!doctype html><meta charset=utf-8><title>Login failed</title><h1>Login failed</h1><p>%s.</p><p><a href=\"%s\">Log in again</a></p>\n",
		html.EscapeString(msg), html.EscapeString(start))
	return nil
}
