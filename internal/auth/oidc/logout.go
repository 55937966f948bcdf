package oidc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"gatehouse/internal/auth/session"
	"gatehouse/internal/phase"
)

type logoutHandler struct{ l *Login }

// ServeLocal serves logout_path. A GET (or HEAD) shows a page with a
// logout button (logoutPage) and never logs out. A POST from a page of
// this origin ends the browser's session; any other POST is refused as
// cross-site request forgery. Logout deletes the session everywhere
// (streams it opened close), clears the cookie, revokes the refresh token
// (RFC 7009) and sends the browser (303) to the issuer's
// end_session_endpoint with id_token_hint and the configured
// post_logout_redirect_uri (or straight there when the issuer has none).
func (h logoutHandler) ServeLocal(rc *phase.RequestCtx, w http.ResponseWriter, r *http.Request) error {
	l := h.l
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		l.logoutPage(w, r)
		return nil
	case http.MethodPost:
	default:
		return &phase.Error{Kind: phase.KindMethod, Header: http.Header{"Allow": {"GET, HEAD, POST"}}}
	}
	if !l.sameOrigin(r) {
		return phase.NewError(phase.KindForbidden, "logout must be asked for by a page of this site", nil)
	}
	var rec *Record
	if id, err := l.cookieID(r); err == nil {
		key := storeKey(id)
		var lerr error
		rec, lerr = l.load(r.Context(), key)
		if derr := l.end(r.Context(), key); derr != nil || (lerr != nil && !errors.Is(lerr, session.ErrNotFound)) {
			// The store did not let go of the session (or could not say
			// what it was): it may still be good wherever its cookie
			// is. Say so, and keep the cookie for the retry, rather than
			// a logout that only looks done.
			return phase.NewError(phase.KindAuthUnavailable, "the session store is unavailable: logout did not complete, try again", errors.Join(lerr, derr))
		}
	}
	l.setCookie(w, l.cookie, "", -1)
	target := l.cfg.PostLogoutRedirectURL
	if rec != nil {
		rc.Subject, rc.Auth, rc.AuthReason = rec.Subject, "allow", "logout"
		md, err := l.cfg.Metadata(r.Context())
		if err == nil && rec.RefreshToken != "" && md.RevocationEndpoint != "" {
			if err := l.revoke(r.Context(), md.RevocationEndpoint, rec.RefreshToken); err != nil {
				l.cfg.Events.Warn("logout: refresh token revocation failed", "request_id", rc.RequestID, "err", err)
			}
		}
		if err == nil && md.EndSessionEndpoint != "" {
			if u, perr := url.Parse(md.EndSessionEndpoint); perr == nil {
				q := u.Query()
				q.Set("client_id", l.cfg.ClientID)
				q.Set("post_logout_redirect_uri", l.cfg.PostLogoutRedirectURL)
				if rec.IDToken != "" {
					q.Set("id_token_hint", rec.IDToken)
				}
				u.RawQuery = q.Encode()
				target = u.String()
			}
		}
	}
	noStore(w)
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// revoke revokes a token at the issuer (RFC 7009), authenticating as the
// client the way the token endpoint is authenticated.
func (l *Login) revoke(ctx context.Context, endpoint, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}}
	if l.cfg.ClientSecret == "" {
		form.Set("client_id", l.cfg.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if l.cfg.ClientSecret != "" {
		// RFC 6749 §2.3.1: form-encode id and secret before Basic.
		req.SetBasicAuth(url.QueryEscape(l.cfg.ClientID), url.QueryEscape(l.cfg.ClientSecret))
	}
	resp, err := l.cfg.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revoke: status %d", resp.StatusCode)
	}
	return nil
}
