package compile

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"gatehouse/internal/auth/authn"
	"gatehouse/internal/auth/jwt"
	"gatehouse/internal/auth/oidc"
	"gatehouse/internal/auth/session"
	"gatehouse/internal/config"
	"gatehouse/internal/filter/headers"
	"gatehouse/internal/phase"
	"gatehouse/internal/runtime"
)

// compileLogin builds auth.login: the session store and stream registry
// (Registry services, so sessions survive reloads), the login for this
// snapshot, and Gatehouse's own login, callback and logout paths, which
// are answered on every host before the route table.
func compileLogin(c *config.Config, reg *runtime.Registry, snap *runtime.Snapshot, issuers map[string]*authn.Issuer) (*oidc.Login, error) {
	lc := c.Auth.Login
	if lc == nil {
		return nil, nil
	}
	var key string
	var mk func() any
	switch lc.Store {
	case "redis":
		key = fmt.Sprintf("login|redis|%+v", redisConfig(c.Redis))
		mk = func() any {
			st, err := session.NewRedis(redisConfig(c.Redis), "gatehouse:session:")
			if err != nil {
				return err
			}
			return oidc.NewShared(st, reg.Events())
		}
	default:
		key = fmt.Sprintf("login|memory|%d", lc.MaxSessions)
		mk = func() any { return oidc.NewShared(session.NewMemory(lc.MaxSessions, nil), reg.Events()) }
	}
	sh, ok := reg.Service(key, mk).(*oidc.Shared)
	if !ok {
		return nil, fmt.Errorf("auth.login.store: %v", reg.Service(key, mk))
	}
	if !slices.Contains(snap.Services, key) {
		snap.Services = append(snap.Services, key)
	}
	ic := c.Auth.Issuers[lc.Issuer]
	keys := issuers[lc.Issuer].Keys
	l, err := oidc.New(oidc.Config{
		Issuer:                ic.Issuer,
		ClientID:              lc.ClientID,
		ClientSecret:          lc.ClientSecret,
		RedirectURL:           lc.RedirectURL,
		Scopes:                lc.Scopes,
		Resource:              lc.Resource,
		CookieSecret:          lc.CookieSecret,
		CookieName:            lc.CookieName,
		LoginPath:             lc.LoginPath,
		LogoutPath:            lc.LogoutPath,
		PostLogoutRedirectURL: lc.PostLogoutRedirectURL,
		RefreshMargin:         lc.RefreshMargin.D(),
		MaxLifetime:           lc.MaxLifetime.D(),
		FlowTimeout:           lc.FlowTimeout.D(),
		Metadata:              keys.Metadata,
		// ID tokens: same issuer and keys, audience is Gatehouse itself
		// (OpenID Connect Core §3.1.3.7); no typ requirement.
		IDTokens: &jwt.Verifier{Issuer: ic.Issuer, Audience: lc.ClientID, Algorithms: ic.Algorithms,
			Leeway: ic.Leeway.D(), Keys: keys},
		HTTP:   loginClient(lc.Timeout.D()),
		Events: reg.Events(),
	}, sh)
	if err != nil {
		return nil, fmt.Errorf("auth.login: %w", err)
	}
	snap.StripCookie = lc.CookieName
	if snap.Local == nil {
		snap.Local = map[string]*runtime.Route{}
	}
	var sec []phase.ResponseFilter
	if s := headers.NewSecurity(c.Server.SecurityHeaders, nil); s != nil {
		sec = []phase.ResponseFilter{s}
	}
	for _, lr := range []struct {
		name, path string
		h          phase.Handler
	}{
		{"gatehouse-login", l.LoginPath(), l.LoginHandler()},
		{"gatehouse-callback", l.CallbackPath(), l.CallbackHandler()},
		{"gatehouse-logout", l.LogoutPath(), l.LogoutHandler()},
	} {
		r := &runtime.Route{Name: lr.name, Action: runtime.ActionLocal, Local: lr.h, ExactPath: lr.path,
			Describe: "path " + lr.path + " → Gatehouse login", ResponseFilters: sec, MaxBodyBytes: 64 << 10}
		if m := reg.Metrics(); m != nil {
			r.Obs = m.Route(lr.name)
		}
		snap.Local[lr.path] = r
	}
	return l, nil
}

// loginClient is authClient with the login's per-request timeout.
func loginClient(timeout time.Duration) *http.Client {
	c := authClient()
	c.Timeout = timeout
	return c
}
