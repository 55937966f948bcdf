package devidp

import (
	"errors"
	"time"
)

// errFull means a table is at its bound even after sweeping expired
// entries; the request is answered with temporarily_unavailable.
var errFull = errors.New("devidp: too many live entries")

// codeRecord is an authorization code. After redemption it stays, marked
// used, until it expires, so a second redemption can be detected.
type codeRecord struct {
	clientID, redirectURI string
	challenge             string // S256 code_challenge
	nonce, scope          string
	user                  User
	exp                   time.Time
	used                  bool
	grantID               string // set on redemption
}

// grant is one login: what a redeemed code started and its refresh tokens
// carry on. Revoking it deletes every token record it owns.
type grant struct {
	id        string
	user      User
	clientID  string
	scope     string
	authTime  time.Time
	exp       time.Time // refresh tokens die with the grant
	refreshes []string  // every refresh token issued, rotated ones included
	jtis      []string  // every access token issued
}

// refreshRecord is one opaque refresh token.
type refreshRecord struct {
	grantID string
	iat     time.Time
	exp     time.Time
	rotated bool // used once already; presenting it again is reuse
}

// accessRecord is one issued access token, by jti. Revoked tokens are
// deleted, so only records that exist and have not expired are active.
type accessRecord struct {
	sub, clientID, scope string
	roles                []string
	iat, exp             time.Time
}

type expirer interface{ expiry() time.Time }

func (c *codeRecord) expiry() time.Time    { return c.exp }
func (g *grant) expiry() time.Time         { return g.exp }
func (r *refreshRecord) expiry() time.Time { return r.exp }
func (a *accessRecord) expiry() time.Time  { return a.exp }

// put adds k to m. When m holds max entries it first sweeps expired ones,
// and if it is still full it refuses with errFull rather than evicting a
// live entry (evicting a rotated refresh token would hide its reuse).
func put[V expirer](m map[string]V, k string, v V, now time.Time, max int) error {
	if len(m) >= max {
		for key, e := range m {
			if !now.Before(e.expiry()) {
				delete(m, key)
			}
		}
		if len(m) >= max {
			return errFull
		}
	}
	m[k] = v
	return nil
}

// live reports whether exp is still in the future.
func live(exp, now time.Time) bool { return now.Before(exp) }

// revokeGrantLocked deletes a grant and every token record it owns. Codes
// that started it stay marked used. Caller holds i.mu.
func (i *IdP) revokeGrantLocked(id string) {
	g, ok := i.grants[id]
	if !ok {
		return
	}
	for _, t := range g.refreshes {
		delete(i.refreshTok, t)
	}
	for _, j := range g.jtis {
		delete(i.accessJTI, j)
	}
	delete(i.grants, id)
}

// revokeUserLocked revokes every grant of a user. Caller holds i.mu.
func (i *IdP) revokeUserLocked(user string) {
	for id, g := range i.grants {
		if g.user.Name == user {
			i.revokeGrantLocked(id)
		}
	}
}

// issued is what the token endpoint signs after the state change is done.
type issued struct {
	user         User
	clientID     string
	scope        string
	nonce        string // "" on refresh (OIDC Core §12.2)
	authTime     time.Time
	jti          string
	refreshToken string
	iat, exp     time.Time
}

// issueLocked records a new access token and refresh token for g and
// returns what to sign. Caller holds i.mu.
func (i *IdP) issueLocked(g *grant, scope, nonce string, now time.Time) (issued, error) {
	out := issued{
		user: g.user, clientID: g.clientID, scope: scope, nonce: nonce, authTime: g.authTime,
		jti: randomToken(), refreshToken: randomToken(), iat: now, exp: now.Add(i.access),
	}
	rr := &refreshRecord{grantID: g.id, iat: now, exp: g.exp}
	if err := put(i.refreshTok, out.refreshToken, rr, now, i.max); err != nil {
		return issued{}, err
	}
	ar := &accessRecord{sub: g.user.Name, clientID: g.clientID, scope: scope, roles: g.user.Roles, iat: now, exp: out.exp}
	if err := put(i.accessJTI, out.jti, ar, now, i.max); err != nil {
		delete(i.refreshTok, out.refreshToken)
		return issued{}, err
	}
	g.refreshes = append(g.refreshes, out.refreshToken)
	g.jtis = append(g.jtis, out.jti)
	i.lastRefresh = out.refreshToken
	return out, nil
}
