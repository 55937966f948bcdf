package testutil

import (
	"io"
	"net/http"
	"testing"
)

// Jar is a minimal browser for login tests: it keeps cookies by name
// (dropping those a response expires) and never follows redirects.
type Jar struct {
	Cookies map[string]string
}

// NewJar returns a Jar without cookies.
func NewJar() *Jar { return &Jar{Cookies: map[string]string{}} }

// Do sends a request with the jar's cookies and hdr (name, value pairs)
// and returns the response and its body.
func (j *Jar) Do(t testing.TB, method, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	for k, v := range j.Cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(j.Cookies, c.Name)
		} else {
			j.Cookies[c.Name] = c.Value
		}
	}
	return resp, string(b)
}
