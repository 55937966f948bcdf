package authn

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"gatehouse/internal/phase"
)

// ResourceDoc is an RFC 9728 protected resource metadata document.
type ResourceDoc struct {
	Resource              string   `json:"resource"`
	AuthorizationServers  []string `json:"authorization_servers,omitempty"`
	ScopesSupported       []string `json:"scopes_supported,omitempty"`
	BearerMethods         []string `json:"bearer_methods_supported"`
	ResourceName          string   `json:"resource_name,omitempty"`
	ResourceDocumentation string   `json:"resource_documentation,omitempty"`
}

// MetadataURL is where the document of resource is published (RFC 9728
// §3.1): the well-known path goes between the host and the resource's
// path, so https://gw.example/api has its metadata at
// https://gw.example/.well-known/oauth-protected-resource/api. It returns
// the URL and its path.
func MetadataURL(resource string) (string, string) {
	u, err := url.Parse(resource)
	if err != nil {
		return "", ""
	}
	path := "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.EscapedPath(), "/")
	return u.Scheme + "://" + u.Host + path, path
}

// ResourceMetadata serves a ResourceDoc (a phase.Handler), encoded once.
type ResourceMetadata struct{ body []byte }

// NewResourceMetadata encodes doc; bearer tokens are taken in the
// Authorization header only (RFC 6750 §2.1).
func NewResourceMetadata(doc ResourceDoc) *ResourceMetadata {
	doc.BearerMethods = []string{"header"}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return &ResourceMetadata{body: append(b, '\n')}
}

// ServeLocal implements phase.Handler.
func (m *ResourceMetadata) ServeLocal(_ *phase.RequestCtx, w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return &phase.Error{Kind: phase.KindMethod, Header: http.Header{"Allow": {"GET, HEAD"}}}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("Access-Control-Allow-Origin", "*") // public metadata, read by browser clients
	if r.Method == http.MethodGet {
		_, _ = w.Write(m.body)
	}
	return nil
}
