package devidp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// accessClaims are the claims of an access token (RFC 9068 §2.2).
type accessClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      string   `json:"aud"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Roles    []string `json:"roles"`
	AuthTime int64    `json:"auth_time"`
	Iat      int64    `json:"iat"`
	Exp      int64    `json:"exp"`
	Jti      string   `json:"jti"`
}

// idClaims are the claims of an ID token (OIDC Core §2).
type idClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      string   `json:"aud"`
	Azp      string   `json:"azp"`
	Nonce    string   `json:"nonce,omitempty"`
	AuthTime int64    `json:"auth_time"`
	Iat      int64    `json:"iat"`
	Exp      int64    `json:"exp"`
	Name     string   `json:"name"`
	Roles    []string `json:"roles"`
}

// tokenResponse is the success body of the token endpoint (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope"`
}

// sign turns what the token endpoint recorded into the response body. The
// ID token is only issued when the scope includes openid (OIDC Core §3.1.2.1).
func (i *IdP) sign(t issued) (tokenResponse, error) {
	at, err := signJSON(i.atSigner, accessClaims{
		Iss: i.issuer, Sub: t.user.Name, Aud: i.audience, ClientID: t.clientID, Scope: t.scope,
		Roles: t.user.Roles, AuthTime: t.authTime.Unix(), Iat: t.iat.Unix(), Exp: t.exp.Unix(), Jti: t.jti,
	})
	if err != nil {
		return tokenResponse{}, err
	}
	resp := tokenResponse{
		AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(i.access / time.Second),
		RefreshToken: t.refreshToken, Scope: t.scope,
	}
	if hasScope(t.scope, "openid") {
		resp.IDToken, err = signJSON(i.idSigner, idClaims{
			Iss: i.issuer, Sub: t.user.Name, Aud: t.clientID, Azp: t.clientID, Nonce: t.nonce,
			AuthTime: t.authTime.Unix(), Iat: t.iat.Unix(), Exp: t.exp.Unix(), Name: t.user.Name, Roles: t.user.Roles,
		})
		if err != nil {
			return tokenResponse{}, err
		}
	}
	return resp, nil
}

func signJSON(s jose.Signer, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devidp: encode claims: %w", err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("devidp: sign: %w", err)
	}
	return jws.CompactSerialize()
}

var errBadJWT = errors.New("devidp: not a token of this issuer")

// verifyOwn checks that token is a compact JWS signed with this issuer's
// key, with header typ wantTyp and iss equal to the issuer, and decodes its
// claims into dst. Expiry is the caller's business: end_session accepts
// expired ID tokens (OIDC RP-Initiated Logout §2).
func (i *IdP) verifyOwn(token, wantTyp string, dst any) error {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return errBadJWT
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != wantTyp || h.KeyID != i.kid {
		return errBadJWT
	}
	payload, err := jws.Verify(&i.key.PublicKey)
	if err != nil {
		return errBadJWT
	}
	var iss struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(payload, &iss) != nil || iss.Iss != i.issuer || json.Unmarshal(payload, dst) != nil {
		return errBadJWT
	}
	return nil
}

// discovery serves OpenID Connect Discovery 1.0 §3 and RFC 8414 metadata
// (one document for both).
func (i *IdP) discovery(w http.ResponseWriter, _ *http.Request) {
	authMethods := []string{"client_secret_basic", "client_secret_post", "none"}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                     i.issuer,
		"authorization_endpoint":                     i.issuer + "/authorize",
		"token_endpoint":                             i.issuer + "/token",
		"jwks_uri":                                   i.issuer + "/jwks",
		"revocation_endpoint":                        i.issuer + "/revoke",
		"introspection_endpoint":                     i.issuer + "/introspect",
		"end_session_endpoint":                       i.issuer + "/end_session",
		"response_types_supported":                   []string{"code"},
		"response_modes_supported":                   []string{"query"},
		"grant_types_supported":                      []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":           []string{"S256"},
		"token_endpoint_auth_methods_supported":      authMethods,
		"revocation_endpoint_auth_methods_supported": authMethods,
		// Introspection needs a confidential client (RFC 7662 §2.1).
		"introspection_endpoint_auth_methods_supported":  authMethods[:2],
		"id_token_signing_alg_values_supported":          []string{"ES256"},
		"subject_types_supported":                        []string{"public"},
		"authorization_response_iss_parameter_supported": true,
		"scopes_supported":                               []string{"openid", "profile", "offline_access"},
		"claims_supported":                               []string{"iss", "sub", "aud", "azp", "nonce", "auth_time", "iat", "exp", "name", "roles"},
	})
}

// jwks serves the public key set (RFC 7517 §5).
func (i *IdP) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &i.key.PublicKey, KeyID: i.kid, Use: "sig", Algorithm: string(jose.ES256),
	}}})
}

// writeJSON writes v with Cache-Control: no-store, as RFC 6749 §5.1
// requires for anything carrying tokens.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
