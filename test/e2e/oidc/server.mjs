// A real OAuth 2.1 authorization server for Gatehouse's end-to-end tests:
// panva's oidc-provider on http://127.0.0.1:$PORT, issuing RS256 JWT access
// tokens (RFC 9068) by client_credentials for the resource
// https://gatehouse.test. The signing keys come from $KEYS_FILE (a JSON
// array of private JWKs, the first signs), so a test rotates keys by
// restarting this server with a new file.
//
// Clients: admin-client / admin-secret gets roles ["admin"];
//          user-client / user-secret gets roles ["viewer"].
import fs from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const keys = JSON.parse(fs.readFileSync(process.env.KEYS_FILE, 'utf8'));
const resource = 'https://gatehouse.test';
const opaqueResource = 'https://opaque.gatehouse.test';

const client = (id, secret) => ({
  client_id: id,
  client_secret: secret,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope: 'kline.read flow.read',
});

const provider = new Provider(issuer, {
  clients: [client('admin-client', 'admin-secret'), client('user-client', 'user-secret'),
    client('gatehouse', 'gatehouse-secret')],
  scopes: ['openid', 'kline.read', 'flow.read'],
  jwks: { keys },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      // https://gatehouse.test gets JWT access tokens; the same audience
      // asked for as https://opaque.gatehouse.test gets opaque ones, which
      // only introspection can check (JWTs cannot be introspected here).
      getResourceServerInfo: (ctx, indicator) => (indicator === opaqueResource
        ? { scope: 'kline.read flow.read', audience: resource, accessTokenFormat: 'opaque', accessTokenTTL: 300 }
        : {
          scope: 'kline.read flow.read',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 300,
          jwt: { sign: { alg: 'RS256' } },
        }),
    },
  },
  extraTokenClaims: async (ctx, token) => ({
    roles: token.clientId === 'admin-client' ? ['admin'] : ['viewer'],
  }),
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
