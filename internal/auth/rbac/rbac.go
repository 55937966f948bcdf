// Package rbac holds the verified identity of a request (Principal) and
// decides route policies on it: roles (any of / all of), scopes, and claim
// values. Every decision carries a reason for the access log.
package rbac

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"gatehouse/internal/phase"
)

// Principal is who a verified token speaks for.
type Principal struct {
	Issuer   string // the issuer's name in the config
	Subject  string
	ClientID string
	Roles    []string
	Scopes   []string
	Claims   map[string]any
	// Identity holds the identity headers computed for this principal
	// when its token was verified (authn).
	Identity phase.Identity
	// Assertion caches the principal's signed identity assertion
	// (internal/auth/assert), shared by the requests with its token.
	Assertion atomic.Pointer[SignedAssertion]
}

// SignedAssertion is a signed identity assertion and when to sign anew.
type SignedAssertion struct {
	Token string
	Renew time.Time
}

// Extract builds a Principal from verified claims; rolesPath and
// scopePath are dotted claim paths ("realm_access.roles").
func Extract(issuer string, claims map[string]any, rolesPath, scopePath string) *Principal {
	p := &Principal{Issuer: issuer, Claims: claims}
	p.Subject, _ = claims["sub"].(string)
	if c, ok := claims["client_id"].(string); ok {
		p.ClientID = c
	} else if c, ok := claims["azp"].(string); ok {
		p.ClientID = c
	}
	p.Roles = roleList(Lookup(claims, rolesPath))
	p.Scopes = scopeList(Lookup(claims, scopePath))
	return p
}

// Lookup follows a dotted path into nested objects.
func Lookup(claims map[string]any, path string) any {
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// scopeList reads a scope claim: a space-separated string (RFC 6749
// §3.3, RFC 9068 §2.2.3) or an array of strings. Only space separates:
// strings.Fields would split on tabs and Unicode spaces too, which a
// scope-token cannot hold anyway.
func scopeList(v any) []string {
	if t, ok := v.(string); ok {
		out := strings.Split(t, " ")
		return slices.DeleteFunc(out, func(s string) bool { return s == "" })
	}
	return stringArray(v)
}

// roleList reads a roles claim: an array of strings, or one string, which
// is one role. Roles are not a space-separated list (RFC 9068 §2.2.3.1
// takes them from SCIM, where each is one value): split, a single role
// "not admin" or "Read Only Admin" would hold the role admin or Admin.
func roleList(v any) []string {
	if t, ok := v.(string); ok {
		return []string{t}
	}
	return stringArray(v)
}

// stringArray reads an array's string members (others are skipped).
func stringArray(v any) []string {
	switch t := v.(type) {
	case []any:
		out := make([]string, 0, len(t))
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Policy is a route's compiled requirements.
type Policy struct {
	AnyRoles []string
	AllRoles []string
	Scopes   []string
	Claims   map[string]string
}

// Decide allows p, or denies with the first unmet requirement as reason.
func (pol *Policy) Decide(p *Principal) (bool, string) {
	if len(pol.AnyRoles) > 0 && !slices.ContainsFunc(pol.AnyRoles, func(r string) bool { return slices.Contains(p.Roles, r) }) {
		return false, "missing role " + strings.Join(pol.AnyRoles, " or ")
	}
	for _, r := range pol.AllRoles {
		if !slices.Contains(p.Roles, r) {
			return false, "missing role " + r
		}
	}
	for _, s := range pol.Scopes {
		if !slices.Contains(p.Scopes, s) {
			return false, "missing scope " + s
		}
	}
	for path, want := range pol.Claims {
		if !claimMatches(Lookup(p.Claims, path), want) {
			return false, fmt.Sprintf("claim %s is not %q", path, want)
		}
	}
	return true, ""
}

func claimMatches(v any, want string) bool {
	switch t := v.(type) {
	case string:
		return t == want
	case json.Number:
		return t.String() == want
	case bool:
		return fmt.Sprint(t) == want
	case []any:
		for _, x := range t {
			if claimMatches(x, want) {
				return true
			}
		}
	}
	return false
}
