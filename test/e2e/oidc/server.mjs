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
import http from 'node:http';
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
    client('gatehouse', 'gatehouse-secret'),
    {
      // A public browser client for user tokens: authorization code + PKCE.
      client_id: 'web',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
      token_endpoint_auth_method: 'none',
      scope: 'openid kline.read',
    }],
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
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
  // Roles: the admin-client and the user "alice" are admins; everyone
  // else is a viewer.
  extraTokenClaims: async (ctx, token) => ({
    roles: token.clientId === 'admin-client' || token.accountId === 'alice' ? ['admin'] : ['viewer'],
  }),
});

// A test stands in for the user: it opens /interaction/<uid>?login=<name>,
// and this logs that name in and consents to what the client asked for.
// (No passwords: this server exists for tests only.)
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    const login = new URL(req.url, issuer).searchParams.get('login');
    if (!login) {
      res.statusCode = 400;
      res.end('login= is required');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    return;
  }
  // Consent to exactly what the prompt says is missing.
  const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details;
  if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
  if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      res.statusCode = 500;
      res.end(String(err));
    });
    return;
  }
  callback(req, res);
}).listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
