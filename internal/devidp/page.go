package devidp

import (
	"bytes"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// pageTitle names every HTML page, so nobody mistakes this issuer for a
// real one.
const pageTitle = "Gatehouse development issuer — not for production"

// The pages are self-contained: no scripts, no external assets, inline
// style only. html/template escapes every value, the request's own
// parameters included.
var pages = template.Must(template.New("page").Funcs(template.FuncMap{"join": strings.Join}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}
.warn{background:#fff3cd;border:1px solid #e0b000;border-radius:6px;padding:.75rem 1rem}
button{display:block;width:100%;margin:.5rem 0;padding:.75rem;font-size:1rem;border:1px solid #888;border-radius:6px;background:#f6f6f6;cursor:pointer;text-align:left}
button:hover{background:#e8e8e8}
.roles{color:#666;font-size:.9rem}
code{background:#f0f0f0;padding:0 .25rem}
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="warn"><strong>Not for production.</strong> This issuer has no passwords: anyone who can reach it can sign in as anyone below. Its key is thrown away when it stops.</p>
{{- if .Users}}
<p>Sign in to <code>{{.ClientID}}</code> as:</p>
<form method="get" action="{{.Action}}">
{{- range .Params}}
<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{- end}}
{{- range .Users}}
<button type="submit" name="login" value="{{.Name}}">{{.Name}} <span class="roles">— roles: {{if .Roles}}{{join .Roles ", "}}{{else}}none{{end}}</span></button>
{{- end}}
</form>
{{- else}}
<h2>{{.Heading}}</h2>
<p>{{.Message}}</p>
{{- end}}
</body>
</html>
`))

type param struct{ Name, Value string }

type pageData struct {
	Title    string
	ClientID string
	Action   string
	Params   []param
	Users    []User
	Heading  string
	Message  string
}

// loginPage renders one button per user in a GET form that resubmits every
// original parameter plus login=<name>.
func (i *IdP) loginPage(w http.ResponseWriter, clientID string, q url.Values) {
	keys := make([]string, 0, len(q))
	for k := range q {
		if k != "login" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var ps []param
	for _, k := range keys {
		for _, v := range q[k] {
			ps = append(ps, param{k, v})
		}
	}
	i.render(w, http.StatusOK, pageData{
		Title: pageTitle, ClientID: clientID, Action: i.base + "/authorize", Params: ps, Users: i.users,
	})
}

// messagePage renders a page with a heading and a message, e.g. an error
// that must not be redirected.
func (i *IdP) messagePage(w http.ResponseWriter, status int, heading, msg string) {
	i.render(w, status, pageData{Title: pageTitle, Heading: heading, Message: msg})
}

func (i *IdP) render(w http.ResponseWriter, status int, d pageData) {
	var buf bytes.Buffer
	if err := pages.Execute(&buf, d); err != nil {
		http.Error(w, "devidp: render page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// No form-action: browsers apply it to the redirect that follows the
	// form submission, which goes to the client's own origin.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer") // the URL carries state and the PKCE challenge
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
