// oidc-provider for toolbridge's credential tests: authorization code + PKCE, client credentials,
// rotating refresh tokens with reuse detection, short access tokens, RFC 8707 resource indicators for
// https://api.test/. Bound to 127.0.0.1.
// Usage: node oidc-provider.mjs PORT EVENTS_FILE REDIRECT_URI [ACCESS_TTL_SECONDS]
// Every token-endpoint request and every revoked grant is appended to EVENTS_FILE as a JSON line.
// Opt-in (environment): OIDC_REGISTRATION=1 enables open dynamic client registration (RFC 7591) at /reg;
// OIDC_RESOURCES=URL[,URL…] accepts those resource indicators too (scope mcp:tools, JWT access tokens
// signed with the keys at /jwks), for MCP upstreams.
import fs from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const [port, eventsFile, redirectUri, accessTtl = '60'] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const registration = process.env.OIDC_REGISTRATION === '1';
const mcpResources = (process.env.OIDC_RESOURCES ?? '').split(',').filter(Boolean);
const log = (event) => fs.appendFileSync(eventsFile, `${JSON.stringify({ at: Date.now(), ...event })}\n`);

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'toolbridge',
      client_secret: 'toolbridge-test-client-secret',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
      scope: 'openid offline_access api:read',
    },
  ],
  scopes: ['openid', 'offline_access', 'api:read'],
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    registration: { enabled: registration },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        if (mcpResources.includes(resource)) {
          return { scope: 'mcp:tools', audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: Number(accessTtl) };
        }
        if (resource !== 'https://api.test/') throw new errors.InvalidTarget();
        return { scope: 'api:read', audience: resource, accessTokenFormat: 'opaque', accessTokenTTL: Number(accessTtl) };
      },
    },
  },
  pkce: { required: () => true },
  clockTolerance: 0, // its default (15 s) accepted access tokens up to 15 s past their expiry
  rotateRefreshToken: true,
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: Number(accessTtl),
    ClientCredentials: Number(accessTtl),
    AuthorizationCode: 60,
    RefreshToken: 3600,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
  },
  cookies: { keys: ['toolbridge-test-cookie-key'] },
  findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
});

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.method === 'POST') {
    log({ kind: 'token', status: ctx.status, grant_type: ctx.oidc?.params?.grant_type ?? null });
  }
  if (ctx.path === '/reg' && ctx.method === 'POST') {
    log({ kind: 'registration', status: ctx.status });
  }
});
provider.on('grant.revoked', () => log({ kind: 'grant.revoked' }));

const server = provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
// Idle kept-alive connections stay open a minute, not Node's 5 s: the tests' DropProxy holds a request
// on a kept-alive connection to play a slow server, and under CI's patience (x3) the hold outlasted 5 s,
// so the server closed the connection beneath the held request and the client saw a disconnect.
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
process.on('SIGTERM', () => server.close(() => process.exit(0)));
