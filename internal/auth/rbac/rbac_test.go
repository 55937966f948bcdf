package rbac

import (
	"slices"
	"testing"
)

// A roles claim that is one string is one role, whatever spaces it holds;
// only a scope string is a list, and only spaces separate it (RFC 6749
// §3.3). Split on any space, "not admin" held the role admin and
// "a\u00a0admin" the scope admin.
func TestClaimLists(t *testing.T) {
	for _, tc := range []struct {
		desc          string
		roles, scope  any
		wantR, wantSc []string
	}{
		{"strings", "not admin", "read write", []string{"not admin"}, []string{"read", "write"}},
		{"unicode space", "Read\u00a0Only Admin", "a\u00a0admin  b", []string{"Read\u00a0Only Admin"}, []string{"a\u00a0admin", "b"}},
		{"tab", "x\tadmin", "x\tadmin", []string{"x\tadmin"}, []string{"x\tadmin"}},
		{"arrays", []any{"admin", 7, "ops"}, []any{"read", nil}, []string{"admin", "ops"}, []string{"read"}},
		{"neither", 42, map[string]any{"a": "b"}, nil, nil},
	} {
		p := Extract("main", map[string]any{"roles": tc.roles, "scope": tc.scope}, "roles", "scope")
		if !slices.Equal(p.Roles, tc.wantR) || !slices.Equal(p.Scopes, tc.wantSc) {
			t.Errorf("%s: roles %q, scopes %q; want %q, %q", tc.desc, p.Roles, p.Scopes, tc.wantR, tc.wantSc)
		}
		pol := &Policy{AnyRoles: []string{"admin"}}
		if ok, _ := pol.Decide(p); ok != slices.Contains(tc.wantR, "admin") {
			t.Errorf("%s: any_of [admin] decided %v", tc.desc, ok)
		}
	}
}
