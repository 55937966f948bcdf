// A real OAuth 2.1 authorization server for Gatehouse's end-to-end tests:
// panva's oidc-provider on http://127.0.0.1:$PORT, issuing RS256 JWT access
// tokens (RFC 9068) by client_credentials for the resource
// https://gatehouse.test. The signing keys come from $KEYS_FILE (a JSON
// array of private JWKs, the first signs), so a test rotates keys by
// restarting this server with a new file.
//
// Clients: admin-client / admin-secret gets roles ["admin"];
//          user-client / user-secret gets roles ["viewer"];
//          web: a public client (authorization code + PKCE);
//          gatehouse-web / gatehouse-web-secret: Gatehouse's own browser
//          login (confidential; authorization code + PKCE + rotating
//          refresh tokens), configured by the environment:
//            LOGIN_REDIRECT_URIS     comma-separated redirect_uris
//            LOGIN_POST_LOGOUT_URIS  comma-separated post_logout_redirect_uris
//            LOGIN_ACCESS_TTL        its access tokens' lifetime, s (default 300)
//
// Users: whoever the interaction page is told (no passwords). "alice" and
// "alice-<anything>" are admins (so parallel tests can each have their own
// admin); everyone else is a viewer.
//
// TEST-ONLY hooks (this server exists for tests; nothing like them belongs
// in a real authorization server):
//   GET /test/refresh-grants[?account=a]     {"count": n, "failed": m}:
//       refresh_token grants that succeeded / failed (for that account)
//   GET /test/last-refresh-token[?account=a] {"refresh_token": "..."}: the
//       refresh token issued last (to that account), so a test can play the
//       attacker who stole it
import fs from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const keys = JSON.parse(fs.readFileSync(process.env.KEYS_FILE, 'utf8'));
const resource = 'https://gatehouse.test';
const opaqueResource = 'https://opaque.gatehouse.test';
const list = (v) => (v || '').split(',').map((x) => x.trim()).filter(Boolean);
const loginAccessTTL = Number(process.env.LOGIN_ACCESS_TTL || 300);
const isAdmin = (account) => account === 'alice' || (typeof account === 'string' && account.startsWith('alice-'));

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
    },
    {
      // Gatehouse's browser login (auth.login).
      client_id: 'gatehouse-web',
      client_secret: 'gatehouse-web-secret',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: list(process.env.LOGIN_REDIRECT_URIS),
      post_logout_redirect_uris: list(process.env.LOGIN_POST_LOGOUT_URIS),
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid offline_access kline.read',
    }],
  pkce: { required: () => true },
  // Every refresh rotates the refresh token; presenting one already
  // rotated revokes the whole grant (lib/actions/grants/refresh_token.js:
  // "refresh token already used"), so the next legitimate refresh gets
  // invalid_grant.
  rotateRefreshToken: true,
  // A refresh token for every client allowed the refresh_token grant.
  issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  scopes: ['openid', 'offline_access', 'kline.read', 'flow.read'],
  jwks: { keys },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      // The default pages load web fonts from the internet; tests have none.
      logoutSource: (ctx, form) => {
        ctx.body = `<!doctype html><meta charset=utf-8><title>Logout Request</title>
<h1>Do you want to sign out?</h1>${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`;
      },
      postLogoutSuccessSource: (ctx) => {
        ctx.body = '<!doctype html><meta charset=utf-8><title>Sign-out Success</title><h1>Signed out</h1>';
      },
    },
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
      // gatehouse-web's access tokens live LOGIN_ACCESS_TTL seconds, so a
      // test can watch Gatehouse refresh them.
      getResourceServerInfo: (ctx, indicator, client) => (indicator === opaqueResource
        ? { scope: 'kline.read flow.read', audience: resource, accessTokenFormat: 'opaque', accessTokenTTL: 300 }
        : {
          scope: 'kline.read flow.read',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: client?.clientId === 'gatehouse-web' ? loginAccessTTL : 300,
          jwt: { sign: { alg: 'RS256' } },
        }),
    },
  },
  // Roles: the admin-client and the users alice and alice-* are admins;
  // everyone else is a viewer.
  extraTokenClaims: async (ctx, token) => ({
    roles: token.clientId === 'admin-client' || isAdmin(token.accountId) ? ['admin'] : ['viewer'],
  }),
});

// TEST-ONLY bookkeeping for the /test/ hooks below.
const refreshGrants = new Map(); // account ('' for all) → { count, failed }
const lastRefreshToken = new Map(); // account ('' for any) → value
const bump = (account, field) => {
  for (const k of ['', account || '']) {
    const e = refreshGrants.get(k) || { count: 0, failed: 0 };
    e[field] += 1;
    refreshGrants.set(k, e);
  }
};
provider.on('grant.success', (ctx) => {
  const account = ctx.oidc.entities.Account?.accountId;
  if (ctx.oidc.params.grant_type === 'refresh_token') bump(account, 'count');
  if (ctx.body?.refresh_token) {
    lastRefreshToken.set('', ctx.body.refresh_token);
    if (account) lastRefreshToken.set(account, ctx.body.refresh_token);
  }
});
provider.on('grant.error', (ctx) => {
  if (ctx.oidc?.params?.grant_type === 'refresh_token') {
    bump(ctx.oidc.entities?.RefreshToken?.accountId, 'failed');
  }
});

function testHook(req, res) {
  const u = new URL(req.url, issuer);
  const account = u.searchParams.get('account') || '';
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Cache-Control', 'no-store');
  switch (u.pathname) {
    case '/test/refresh-grants':
      res.end(JSON.stringify(refreshGrants.get(account) || { count: 0, failed: 0 }));
      return;
    case '/test/last-refresh-token':
      res.end(JSON.stringify({ refresh_token: lastRefreshToken.get(account) || '' }));
      return;
    default:
      res.statusCode = 404;
      res.end('{}');
  }
}

const escapeHTML = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// The login page: a browser sees a form asking for a user name, which
// submits (GET) to the same URL with ?login=<name>; an HTTP client opens
// /interaction/<uid>?login=<name> directly. Either way this logs that name
// in and consents to what the client asked for. (No passwords: this server
// exists for tests only.)
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    const login = new URL(req.url, issuer).searchParams.get('login');
    if (!login) {
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.setHeader('Cache-Control', 'no-store');
      res.end(`<!doctype html><meta charset=utf-8><title>Sign in</title>
<h1>Sign in to ${escapeHTML(details.params.client_id)}</h1>
<form method="get" action="/interaction/${escapeHTML(details.uid)}">
<label>User name <input name="login" autocomplete="username" required autofocus></label>
<button type="submit">Sign in</button>
</form>`);
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
  if (req.url.startsWith('/test/')) {
    testHook(req, res);
    return;
  }
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
