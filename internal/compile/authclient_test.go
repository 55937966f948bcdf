package compile

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The auth client follows a redirect within the origin it asked, and no
// other: keys from, or a token re-POSTed to, a server the config never
// named would be trusted otherwise.
func TestAuthClientRedirectsWithinTheOrigin(t *testing.T) {
	t.Parallel()
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"keys":[]}`)
	}))
	t.Cleanup(elsewhere.Close)
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwks":
			http.Redirect(w, r, "/jwks/", http.StatusFound)
		case "/jwks/":
			_, _ = io.WriteString(w, "same origin")
		case "/moved":
			http.Redirect(w, r, elsewhere.URL+"/jwks", http.StatusTemporaryRedirect)
		}
	}))
	t.Cleanup(idp.Close)
	c := authClient()
	resp, err := c.Get(idp.URL + "/jwks")
	if err != nil {
		t.Fatalf("same-origin redirect: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "same origin" {
		t.Fatalf("same-origin redirect: %q", b)
	}
	resp, err = c.Post(idp.URL+"/moved", "application/x-www-form-urlencoded", strings.NewReader("token=secret"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("a redirect to another origin was followed")
	}
	if !strings.Contains(err.Error(), "another origin") {
		t.Fatalf("err = %v", err)
	}
}
