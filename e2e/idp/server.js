// OpenID provider for the edge-auth end-to-end tests (oidc-provider v9).
//
//   node e2e/idp/server.js [--port N] [--keys FILE]
//
// Listens on 127.0.0.1 only; the issuer is exactly http://127.0.0.1:<port>
// (no trailing slash). Once it accepts connections it prints one line:
//
//   edge-auth-idp ready issuer=http://127.0.0.1:<port> kids=<kid,kid,...>
//
// Options / environment (an option wins over its variable):
//   --port N, IDP_PORT            port (required; 0 is refused: the issuer
//                                 must be known before start)
//   --keys FILE, IDP_KEYS         private JWKS ({"keys": [...]}) used to sign;
//                                 restart with another file to rotate keys.
//                                 Absent: an RS256 and an ES256 key are
//                                 generated at start.
//   --write-keys FILE, IDP_WRITE_KEYS
//                                 write the private JWKS in use to FILE
//                                 (to keep generated keys for a restart).
//   IDP_REDIRECT_URIS             redirect URIs of the clients (comma or
//                                 space separated; default
//                                 http://127.0.0.1:8080/oauth2/callback)
//   IDP_POST_LOGOUT_REDIRECT_URIS post-logout redirect URIs (same syntax;
//                                 default: the origin + "/" of each redirect URI)
//   IDP_ACCESS_TOKEN_TTL          seconds (default 600): AccessToken and
//                                 ClientCredentials tokens
//   IDP_ID_TOKEN_TTL              seconds (default 600)
//   IDP_REFRESH_TOKEN_TTL         seconds (default 86400)
//   IDP_SESSION_TTL               seconds (default 3600)
//   IDP_ID_TOKEN_ALL_CLAIMS       "1": ID tokens of the code flow carry every
//                                 claim of the granted scopes (email, name...)
//                                 like most IdPs do (conformIdTokenClaims
//                                 off); default: only sub (oidc-provider's
//                                 conform mode, the rest via userinfo)
//   IDP_BIG_CLAIM_BYTES           N > 0: accounts get a "big_claim" of N
//                                 characters in the profile scope (to test
//                                 sessions that need cookie splitting)
//   IDP_OFFLINE_ACCESS_CONSENT    "1": an authorization request asking for
//                                 offline_access without a prompt parameter
//                                 is treated as prompt=consent, so a relying
//                                 party that sends no prompt still gets a
//                                 refresh token (as many IdPs behave); default:
//                                 OIDC Core 11, offline_access is dropped
//                                 unless prompt contains consent
//   IDP_ID_TOKEN_EDITS            JSON object {grant_type: {claim: value}}:
//                                 the ID token in a token endpoint answer for
//                                 that grant (authorization_code,
//                                 refresh_token) gets those claims (null
//                                 deletes one) and is signed again with the
//                                 same key, e.g. an ID token without sub, or a
//                                 refresh answer for another user. Default
//                                 none. Also settable while running:
//                                 PUT /__edge_auth/id_token_edits with the
//                                 same JSON (replaces the edits; {} clears).
//   IDP_CLIENTS                   JSON array of client metadata replacing the
//                                 two default clients below
//   IDP_LOG                       "0" silences the request log on stderr
//
// Clients (confidential; client_secret_basic and client_secret_post both
// work; grants client_credentials, authorization_code, refresh_token):
//   edge-auth-app   / edge-auth-app-secret-7Hq2vX9pL4mN8rT3
//   edge-auth-app2  / edge-auth-app2-secret-Kd5wZ1yB6cF0gJ2s
//
// Resource servers (RFC 8707 resource indicators; access tokens for them are
// JWTs, RFC 9068, with iss, sub, aud, client_id, exp, iat, jti, scope):
//   urn:edge-auth:<alg>  for <alg> one of rs256 rs384 rs512 ps256 ps384 ps512
//                        es256 es384 es512 eddsa, signed with that algorithm
//                        by the key set's key for it (so with the generated
//                        keys: urn:edge-auth:rs256 and urn:edge-auth:es256).
//   Scopes of a resource server: "read write". JWT access tokens also carry
//   the client's "edge_auth_claims" metadata (default clients: tenant, roles,
//   tier, internal) as extra claims.
//
// Interactive flows (for OIDC login tests): devInteractions (login form:
// any login name, any password; consent form), refresh tokens
// (offline_access scope with prompt=consent), RP-initiated logout
// (end_session_endpoint), introspection and revocation.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unexpected argument: ${a}`);
    const value = m[2] !== undefined ? m[2] : argv[(i += 1)];
    if (value === undefined) throw new Error(`missing value for --${m[1]}`);
    out[m[1]] = value;
  }
  return out;
}

function list(text) {
  return (text || '').split(/[\s,]+/).filter(Boolean);
}

function seconds(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return n;
}

function generateKeys() {
  const kid = (prefix) => `${prefix}-${crypto.randomBytes(6).toString('hex')}`;
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return {
    keys: [
      { ...rsa, kid: kid('rs256'), alg: 'RS256', use: 'sig' },
      { ...ec, kid: kid('es256'), alg: 'ES256', use: 'sig' },
    ],
  };
}

const RESOURCE_ALGS = {
  rs256: 'RS256', rs384: 'RS384', rs512: 'RS512',
  ps256: 'PS256', ps384: 'PS384', ps512: 'PS512',
  es256: 'ES256', es384: 'ES384', es512: 'ES512',
  eddsa: 'EdDSA',
};

// Which key of the set signs a given algorithm (its alg, else its kty/crv).
function keyFor(jwks, alg) {
  const fits = (k) => {
    if (k.use && k.use !== 'sig') return false;
    if (k.alg) return k.alg === alg || (alg === 'EdDSA' && k.alg === 'Ed25519');
    if (alg.startsWith('RS') || alg.startsWith('PS')) return k.kty === 'RSA';
    if (alg === 'ES256') return k.kty === 'EC' && k.crv === 'P-256';
    if (alg === 'ES384') return k.kty === 'EC' && k.crv === 'P-384';
    if (alg === 'ES512') return k.kty === 'EC' && k.crv === 'P-521';
    if (alg === 'EdDSA') return k.kty === 'OKP' && k.crv === 'Ed25519';
    return false;
  };
  return jwks.keys.find(fits);
}

// A compact JWS signed again by the key set's key of its kid, with `edit`
// applied to its claims (null deletes a claim). RS*/PS* and ES* only.
function resign(keySet, token, edit) {
  const [h, p] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  for (const [k, v] of Object.entries(edit)) {
    if (v === null) delete claims[k];
    else claims[k] = v;
  }
  const jwk = keySet.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`no key ${header.kid} to sign the edited ID token`);
  const key = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const hash = `sha${header.alg.slice(2)}`;
  let sig;
  if (header.alg.startsWith('RS')) {
    sig = crypto.sign(hash, Buffer.from(input), key);
  } else if (header.alg.startsWith('PS')) {
    sig = crypto.sign(hash, Buffer.from(input), {
      key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(header.alg.slice(2)) / 8,
    });
  } else if (header.alg.startsWith('ES')) {
    sig = crypto.sign(hash, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  } else {
    throw new Error(`cannot sign an edited ID token with ${header.alg}`);
  }
  return `${input}.${sig.toString('base64url')}`;
}

const DEFAULT_CLIENTS = [
  {
    client_id: 'edge-auth-app',
    client_secret: 'edge-auth-app-secret-7Hq2vX9pL4mN8rT3',
    edge_auth_claims: { tenant: 'acme', roles: ['reader', 'writer'], tier: 3, internal: true },
  },
  {
    client_id: 'edge-auth-app2',
    client_secret: 'edge-auth-app2-secret-Kd5wZ1yB6cF0gJ2s',
    edge_auth_claims: { tenant: 'globex', roles: ['reader'], tier: 1, internal: false },
  },
];

function main() {
  const args = parseArgs(process.argv.slice(2));
  const port = Number(args.port ?? process.env.IDP_PORT);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error('a port is required: --port N or IDP_PORT');
  }
  const host = '127.0.0.1';
  const issuer = `http://${host}:${port}`;

  const keysPath = args.keys ?? process.env.IDP_KEYS;
  const jwks = keysPath ? JSON.parse(fs.readFileSync(keysPath, 'utf8')) : generateKeys();
  if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new Error('the key set has no keys');
  if (!keyFor(jwks, 'RS256')) throw new Error('the key set needs an RS256 key (ID tokens are RS256)');
  const writeKeys = args['write-keys'] ?? process.env.IDP_WRITE_KEYS;
  if (writeKeys) fs.writeFileSync(writeKeys, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });

  const redirectUris = list(process.env.IDP_REDIRECT_URIS);
  if (redirectUris.length === 0) redirectUris.push('http://127.0.0.1:8080/oauth2/callback');
  let postLogout = list(process.env.IDP_POST_LOGOUT_REDIRECT_URIS);
  if (postLogout.length === 0) postLogout = [...new Set(redirectUris.map((u) => `${new URL(u).origin}/`))];

  const accessTtl = seconds('IDP_ACCESS_TOKEN_TTL', 600);
  const idTtl = seconds('IDP_ID_TOKEN_TTL', 600);
  const refreshTtl = seconds('IDP_REFRESH_TOKEN_TTL', 86400);
  const sessionTtl = seconds('IDP_SESSION_TTL', 3600);
  const allIdTokenClaims = process.env.IDP_ID_TOKEN_ALL_CLAIMS === '1';
  const bigClaimBytes = process.env.IDP_BIG_CLAIM_BYTES ? seconds('IDP_BIG_CLAIM_BYTES', 0) : 0;
  // Not repetitive, so nothing on the way can shrink it.
  const bigClaim = bigClaimBytes
    ? crypto.randomBytes(bigClaimBytes).toString('base64url').slice(0, bigClaimBytes)
    : undefined;

  const base = process.env.IDP_CLIENTS ? JSON.parse(process.env.IDP_CLIENTS) : DEFAULT_CLIENTS;
  const clients = base.map((c) => ({
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogout,
    ...c,
  }));

  const configuration = {
    clients,
    jwks,
    scopes: ['openid', 'offline_access', 'profile', 'email', 'read', 'write'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: bigClaim ? ['name', 'preferred_username', 'big_claim'] : ['name', 'preferred_username'],
    },
    conformIdTokenClaims: !allIdTokenClaims,
    extraClientMetadata: { properties: ['edge_auth_claims'] },
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            email: `${sub}@example.test`,
            email_verified: true,
            name: sub,
            preferred_username: sub,
            ...(bigClaim ? { big_claim: bigClaim } : {}),
          };
        },
      };
    },
    async extraTokenClaims(ctx, token) {
      // Only JWT access tokens (those bound to a resource server) get them.
      if (!token.resourceServer) return undefined;
      const c = token.client?.edgeAuthClaims ?? token.client?.metadata?.()?.edge_auth_claims;
      return c && typeof c === 'object' ? c : undefined;
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // client_credentials without a resource parameter gets an opaque
        // token; authorization_code flows without one get the userinfo token.
        defaultResource: async (ctx, client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        async getResourceServerInfo(ctx, resourceIndicator) {
          const m = /^urn:edge-auth:([a-z0-9]+)$/.exec(resourceIndicator);
          const alg = m && RESOURCE_ALGS[m[1]];
          if (!alg || !keyFor(jwks, alg)) {
            throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          return {
            audience: resourceIndicator,
            scope: 'read write',
            accessTokenTTL: accessTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
    ttl: {
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || accessTtl,
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || accessTtl,
      IdToken: idTtl,
      RefreshToken: refreshTtl,
      Session: sessionTtl,
      Grant: sessionTtl,
      Interaction: 600,
      AuthorizationCode: 60,
    },
    cookies: { keys: ['edge-auth-e2e-idp-cookie-key-1'] },
    // PKCE stays optional for these confidential clients (a client may
    // still send code_challenge; S256 is supported).
    pkce: { required: () => false },
    renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  };

  const provider = new Provider(issuer, configuration);
  const quiet = process.env.IDP_LOG === '0';
  provider.use(async (ctx, next) => {
    const t0 = Date.now();
    await next();
    if (!quiet) {
      process.stderr.write(`${new Date().toISOString()} ${ctx.method} ${ctx.originalUrl} ${ctx.status} ${Date.now() - t0}ms host=${ctx.get('host')} ua=${JSON.stringify(ctx.get('user-agent'))}\n`);
    }
  });
  if (process.env.IDP_OFFLINE_ACCESS_CONSENT === '1') {
    provider.use(async (ctx, next) => {
      if (ctx.method === 'GET' && ctx.path === '/auth' && ctx.query.prompt === undefined
          && String(ctx.query.scope || '').split(' ').includes('offline_access')) {
        ctx.query = { ...ctx.query, prompt: 'consent' };
      }
      await next();
    });
  }
  // Test control: ID tokens the token endpoint answers with, changed and
  // signed again (IDP_ID_TOKEN_EDITS above).
  let idTokenEdits = JSON.parse(process.env.IDP_ID_TOKEN_EDITS || '{}');
  provider.use(async (ctx, next) => {
    if (ctx.path === '/__edge_auth/id_token_edits' && ctx.method === 'PUT') {
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      idTokenEdits = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      ctx.status = 204;
      return;
    }
    await next();
    const edit = idTokenEdits[ctx.oidc?.params?.grant_type];
    if (edit && ctx.method === 'POST' && ctx.status === 200 && ctx.body && typeof ctx.body === 'object'
        && typeof ctx.body.id_token === 'string') {
      ctx.body = { ...ctx.body, id_token: resign(jwks, ctx.body.id_token, edit) };
    }
  });
  provider.on('server_error', (ctx, err) => process.stderr.write(`server_error: ${err.stack}\n`));

  const server = http.createServer(provider.callback());
  server.on('error', (err) => {
    process.stderr.write(`edge-auth-idp: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(port, host, () => {
    const kids = jwks.keys.map((k) => k.kid).join(',');
    process.stdout.write(`edge-auth-idp ready issuer=${issuer} kids=${kids}\n`);
  });

  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

try {
  main();
} catch (err) {
  process.stderr.write(`edge-auth-idp: ${err.message}\n`);
  process.exit(2);
}
