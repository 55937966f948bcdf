package proxy

import (
	"encoding/json"
	"html"
	"net/http"
	"strconv"
	"strings"

	"gatehouse/internal/auth/oidc"
	"gatehouse/internal/phase"
)

// failToProxy is the one place where an error becomes a status:
//   - an explicit Status on the error wins, else its kind's default
//     (phase.Error.StatusCode): upstream unreachable or broken 502, upstream
//     or route timeout 504, nothing to try 503, bad input 400/413, no route
//     404, bugs 500;
//   - a client that has gone gets nothing, and 499 in the access log;
//   - once response headers are out, nothing more can be said: the error
//     is only logged.
//
// The body is RFC 9457 problem details for API clients, a small page for
// browsers (requests that accept text/html).
func (e *Engine) failToProxy(st *state, w *respWriter, r *http.Request, pe *phase.Error) {
	st.rc.Err = pe
	if pe.Kind == phase.KindClientGone || w.wroteHeader || w.hijacked {
		return
	}
	status := pe.StatusCode()
	h := w.Header()
	for k, v := range pe.Header {
		h[k] = v
	}
	detail := pe.Detail
	title := http.StatusText(status)
	var body []byte
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		oidc.SetPageHeaders(h)
		body = errorPage(status, title, detail, st.rc.RequestID, pe.Session)
	} else {
		h.Set("Content-Type", "application/problem+json")
		body, _ = json.Marshal(problem{Type: "about:blank", Title: title, Status: status, Detail: detail, RequestID: st.rc.RequestID})
		body = append(body, '\n')
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	if pe.Kind == phase.KindRequestTimeout || pe.Kind == phase.KindBodyTooLarge {
		h.Set("Connection", "close") // the rest of the body will not be read
	}
	if r.ProtoMajor >= 2 {
		// The stream ends with this answer; "Connection: close" would make
		// Go's HTTP/2 server shut down the whole connection (GOAWAY), with
		// every other stream on it.
		delete(h, "Connection")
	}
	h.Del("Content-Encoding")
	h.Del("Etag")
	h.Del("Last-Modified")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// errorPage is the small page browsers get. A refused login session's
// page names who is logged in and offers the logout button, so a person
// refused can log in as someone else.
func errorPage(status int, title, detail, requestID string, sess *phase.Session) []byte {
	var b strings.Builder
	code := strconv.Itoa(status) + " " + html.EscapeString(title)
	b.WriteString("<!doctype html><meta charset=utf-8><title>" + code + "</title><h1>" + code + "</h1><p>" + html.EscapeString(detail) + "</p>")
	if sess != nil {
		b.WriteString("<p>You are logged in as <strong>" + html.EscapeString(sess.User) + "</strong>.</p>" + oidc.LogoutForm(sess.LogoutPath))
	}
	b.WriteString("<p><small>request id " + html.EscapeString(requestID) + "</small></p>\n")
	return []byte(b.String())
}

// problem is an RFC 9457 problem details object.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	RequestID string `json:"request_id"`
}
