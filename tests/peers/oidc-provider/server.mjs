#!/usr/bin/env node
// OpenID Connect provider test peer for Roster's integration tests.
//
// A real `oidc-provider` instance with a scripted, form-less login and a few
// test-control endpoints. NOT for production: accounts, sessions and grants
// live in memory and the control endpoints are unauthenticated.
//
// See README.md beside this file for the interface.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { interactionPolicy } from 'oidc-provider';

// stdout carries exactly one line (the ready line). oidc-provider prints its
// notices with console.info, so everything console-ish goes to stderr.
for (const method of ['log', 'info', 'debug']) {
  console[method] = (...args) => console.error(...args);
}

const log = (...args) => console.error('[oidc-peer]', ...args);

function usage(message) {
  process.stderr.write(`${message}\n`
    + 'usage: node server.mjs [--port N] [--client ID:SECRET:REDIRECT_URI[,REDIRECT_URI...]]...\n'
    + '                      [--claims-in-id-token] [--ignore-stdin]\n');
  process.exit(2);
}

// ---------------------------------------------------------------- arguments

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      client: { type: 'string', multiple: true, default: [] },
      'claims-in-id-token': { type: 'boolean', default: false },
      'ignore-stdin': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  usage(err.message);
}
if (args.help) usage('OpenID Connect provider test peer');

const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  usage(`invalid --port ${JSON.stringify(args.port)}`);
}

// ID:SECRET:REDIRECT_URI — the redirect URI itself contains colons, so only
// the first two colons separate fields. Several redirect URIs may be given
// separated by commas.
const clients = args.client.map((spec) => {
  const first = spec.indexOf(':');
  const second = first === -1 ? -1 : spec.indexOf(':', first + 1);
  if (first <= 0 || second === -1 || second === first + 1 || second === spec.length - 1) {
    usage(`invalid --client ${JSON.stringify(spec)} (expected ID:SECRET:REDIRECT_URI)`);
  }
  const redirectUris = spec.slice(second + 1).split(',').filter(Boolean);
  for (const uri of redirectUris) {
    try {
      new URL(uri); // eslint-disable-line no-new
    } catch {
      usage(`invalid redirect URI ${JSON.stringify(uri)} in --client`);
    }
  }
  return {
    client_id: spec.slice(0, first),
    client_secret: spec.slice(first + 1, second),
    redirect_uris: redirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    // Registered as client_secret_basic; oidc-provider accepts the secret in
    // the request body (client_secret_post) for either of the two
    // client_secret_* methods, so both work for every client.
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  };
});
if (new Set(clients.map((c) => c.client_id)).size !== clients.length) {
  usage('duplicate client id in --client');
}

// -------------------------------------------------------------- test state

/** sub -> claims (without sub) */
const accounts = new Map();
/** sub named by the last POST /__test/next-login */
let nextLoginSub;

// Cookie signing keys survive key rotation so in-flight sessions stay valid.
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    ...jwk, kid: `k-${crypto.randomBytes(8).toString('hex')}`, alg: 'RS256', use: 'sig',
  };
}

// Storage for sessions, interactions, grants, codes and tokens. oidc-provider's
// built-in memory adapter keeps one store per Provider instance, which key
// rotation replaces; this one is shared by all instances, so logins, grants
// and tokens survive POST /__test/rotate-keys. (The documented adapter
// interface: upsert, find, findByUid, findByUserCode, consume, destroy,
// revokeByGrantId.)
const store = new Map(); // `${model}:${id}` -> { payload, expiresAt }
const sessionUids = new Map(); // session uid -> id
const userCodes = new Map(); // user code -> `${model}:${id}`
const grantMembers = new Map(); // grantId -> Set of `${model}:${id}`

class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  static get(key) {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined;
    store.set(key, { payload: structuredClone(payload), expiresAt });
    if (this.model === 'Session' && payload.uid) sessionUids.set(payload.uid, id);
    if (payload.userCode) userCodes.set(payload.userCode, key);
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
  }

  async find(id) {
    const payload = SharedMemoryAdapter.get(this.key(id));
    return payload === undefined ? undefined : structuredClone(payload);
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const key = userCodes.get(userCode);
    const payload = key === undefined ? undefined : SharedMemoryAdapter.get(key);
    return payload === undefined ? undefined : structuredClone(payload);
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

/** The account a scripted login would pick for this authorization request. */
function chooseAccount(loginHint) {
  if (typeof loginHint === 'string' && accounts.has(loginHint)) {
    return { sub: loginHint, via: 'login_hint' };
  }
  if (nextLoginSub !== undefined && accounts.has(nextLoginSub)) {
    return { sub: nextLoginSub, via: 'next-login' };
  }
  const why = [];
  if (loginHint !== undefined) why.push(`login_hint ${JSON.stringify(loginHint)} is not a registered account`);
  else why.push('the authorization request has no login_hint');
  if (nextLoginSub === undefined) why.push('POST /__test/next-login was never called');
  else why.push(`next-login account ${JSON.stringify(nextLoginSub)} is not registered`);
  return { sub: undefined, why: why.join(' and ') };
}

// ------------------------------------------------------------------ provider

const claimsInIdToken = args['claims-in-id-token'];

function buildConfiguration(signingKey) {
  const policy = interactionPolicy.base();
  // If the scripted login would pick a different account than the one the
  // browser session holds (cookie jar reused across tests), log in again
  // instead of silently reusing the old session.
  policy.get('login').checks.push(new interactionPolicy.Check(
    'scripted_account_mismatch',
    'the scripted test login selects a different account than the session',
    'login_required',
    (ctx) => {
      const { session, params } = ctx.oidc;
      if (!session.accountId) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const { sub } = chooseAccount(params.login_hint);
      if (sub !== undefined && sub !== session.accountId) {
        return interactionPolicy.Check.REQUEST_PROMPT;
      }
      return interactionPolicy.Check.NO_NEED_TO_PROMPT;
    },
  ));

  return {
    adapter: SharedMemoryAdapter,
    clients: structuredClone(clients),
    jwks: { keys: [signingKey] },
    cookies: {
      keys: cookieKeys,
      names: {
        session: '_session',
        interaction: '_interaction',
        resume: '_interaction_resume',
      },
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: [
        'name', 'family_name', 'given_name', 'middle_name', 'nickname',
        'preferred_username', 'profile', 'picture', 'website', 'gender',
        'birthdate', 'zoneinfo', 'locale', 'updated_at',
      ],
      address: ['address'],
      phone: ['phone_number', 'phone_number_verified'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access'],
    responseTypes: ['code'],
    conformIdTokenClaims: !claimsInIdToken,
    async findAccount(ctx, sub) {
      const stored = accounts.get(sub);
      if (!stored) return undefined;
      return {
        accountId: sub,
        // The provider filters these down to what the granted scopes/claims
        // allow, and decides which go into the ID token vs userinfo.
        async claims() {
          const current = accounts.get(sub) ?? stored;
          return { ...structuredClone(current), sub };
        },
      };
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    pkce: {
      // S256 is the only method oidc-provider implements. Required for public
      // clients only; confidential clients may use it or not.
      required: (ctx, client) => client.clientAuthMethod === 'none',
    },
    interactions: {
      policy,
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 120,
      ClientCredentials: 600,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
      PreAuthorizedCode: 600,
      Grant: 3600,
      IdToken: 3600,
      Interaction: 600,
      RefreshToken: 86400,
      Session: 3600,
    },
    clientBasedCORS: () => true,
    async renderError(ctx, out, error) {
      ctx.type = 'json';
      ctx.body = out;
      if (error?.status >= 500) log('error rendered:', error);
    },
  };
}

const server = http.createServer();
let issuer;
let provider;
let providerCallback;
let currentKid;

function installProvider() {
  const key = newSigningKey();
  const next = new Provider(issuer, buildConfiguration(key));
  for (const event of [
    'server_error', 'authorization.error', 'grant.error', 'userinfo.error',
    'jwks.error', 'discovery.error', 'end_session.error', 'backchannel.error',
  ]) {
    next.on(event, (...eventArgs) => {
      const err = eventArgs[eventArgs.length - 1];
      log(`${event}:`, err?.error ?? err?.name, err?.error_description ?? err?.message);
    });
  }
  provider = next;
  providerCallback = next.callback();
  currentKid = key.kid;
  return key.kid;
}

// ------------------------------------------------------------ HTTP plumbing

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(data),
    'cache-control': 'no-store',
  });
  res.end(data);
}

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 1 << 20) throw new Error('request body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  return JSON.parse(text);
}

async function handleTest(req, res, path) {
  if (path === '/__test/health' && (req.method === 'GET' || req.method === 'HEAD')) {
    return sendJson(res, 200, { ok: true, issuer, kid: currentKid });
  }

  if (req.method !== 'POST') {
    return sendJson(res, 405, { error: 'method_not_allowed', error_description: `${req.method} ${path}` });
  }

  let body;
  try {
    body = await readJson(req);
  } catch (err) {
    return sendJson(res, 400, { error: 'invalid_json', error_description: err.message });
  }

  switch (path) {
    case '/__test/accounts': {
      const { sub, claims = {} } = body ?? {};
      if (typeof sub !== 'string' || !sub) {
        return sendJson(res, 400, { error: 'invalid_request', error_description: '"sub" must be a non-empty string' });
      }
      if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
        return sendJson(res, 400, { error: 'invalid_request', error_description: '"claims" must be a JSON object' });
      }
      const { sub: _ignored, ...rest } = claims;
      const replaced = accounts.has(sub);
      accounts.set(sub, rest);
      log(`account ${replaced ? 'replaced' : 'registered'}: ${sub}`);
      return sendJson(res, replaced ? 200 : 201, { sub, claims: rest, replaced });
    }
    case '/__test/next-login': {
      const { sub } = body ?? {};
      if (typeof sub !== 'string' || !sub) {
        return sendJson(res, 400, { error: 'invalid_request', error_description: '"sub" must be a non-empty string' });
      }
      nextLoginSub = sub;
      log(`next login: ${sub}${accounts.has(sub) ? '' : ' (not registered yet)'}`);
      return sendJson(res, 200, { sub, registered: accounts.has(sub) });
    }
    case '/__test/rotate-keys': {
      const previous = currentKid;
      const kid = installProvider();
      log(`signing key rotated: ${previous} -> ${kid}`);
      return sendJson(res, 200, { kid, previous_kid: previous });
    }
    default:
      return sendJson(res, 404, { error: 'not_found', error_description: `no test endpoint ${path}` });
  }
}

// Scripted, form-less interaction: every GET /interaction/:uid resolves the
// pending prompt (login, then consent) and redirects back to the provider.
async function handleInteraction(req, res) {
  if (req.method !== 'GET') {
    return sendJson(res, 405, { error: 'method_not_allowed', error_description: 'scripted interactions are GET only' });
  }
  const current = provider;
  let details;
  try {
    details = await current.interactionDetails(req, res);
  } catch (err) {
    log('interaction lookup failed:', err.message);
    return sendJson(res, 400, {
      error: 'invalid_interaction',
      error_description: `interaction not found or expired (${err.message}); follow the provider's redirects with a cookie jar`,
    });
  }

  const { prompt, params, session } = details;
  try {
    if (prompt.name === 'login') {
      const choice = chooseAccount(params.login_hint);
      if (!choice.sub) {
        log(`interaction ${details.uid}: no account to log in: ${choice.why}`);
        return sendJson(res, 400, {
          error: 'no_test_account',
          error_description: `oidc test peer: cannot choose an account to log in: ${choice.why}. `
            + 'Register one with POST /__test/accounts and name it with login_hint or POST /__test/next-login.',
        });
      }
      if (session?.accountId && session.accountId !== choice.sub) {
        // Switching accounts on a reused cookie jar. oidc-provider would
        // answer with a self-submitting logout form (a browser's JavaScript
        // posts it); a redirect-following test client can't, so end the old
        // browser session here, as that form would, and detach it from the
        // interaction.
        const old = session.cookie ? await current.Session.find(session.cookie) : undefined;
        if (old) await old.destroy();
        details.session = undefined;
        await details.persist();
        log(`interaction ${details.uid}: ended session of ${session.accountId} to switch account`);
      }
      log(`interaction ${details.uid}: login ${choice.sub} (via ${choice.via}) for client ${params.client_id}`);
      return await current.interactionFinished(req, res, {
        login: { accountId: choice.sub, remember: true },
      }, { mergeWithLastSubmission: false });
    }

    if (prompt.name === 'consent') {
      const { accountId } = session;
      let grant;
      if (details.grantId) {
        grant = await current.Grant.find(details.grantId);
      }
      if (!grant) {
        grant = new current.Grant({ accountId, clientId: params.client_id });
      }
      const d = prompt.details ?? {};
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      if (d.missingResourceScopes) {
        for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
      }
      const grantId = await grant.save();
      log(`interaction ${details.uid}: consent for ${accountId} to ${params.client_id}: `
        + `scopes=${(d.missingOIDCScope ?? []).join(' ') || '-'} claims=${(d.missingOIDCClaims ?? []).join(' ') || '-'}`);
      return await current.interactionFinished(req, res, {
        consent: details.grantId ? {} : { grantId },
      }, { mergeWithLastSubmission: true });
    }

    return sendJson(res, 400, {
      error: 'unsupported_prompt',
      error_description: `oidc test peer cannot script prompt ${JSON.stringify(prompt.name)}`,
    });
  } catch (err) {
    log('interaction failed:', err);
    return sendJson(res, 500, { error: 'server_error', error_description: err.message });
  }
}

server.on('request', (req, res) => {
  let path;
  try {
    path = new URL(req.url, 'http://127.0.0.1').pathname;
  } catch {
    return sendJson(res, 400, { error: 'invalid_request', error_description: 'bad request target' });
  }
  if (!provider) {
    return sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'provider is starting' });
  }
  if (path.startsWith('/__test/')) {
    return handleTest(req, res, path).catch((err) => {
      log('test endpoint failed:', err);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: err.message });
    });
  }
  if (/^\/interaction\/[^/]+\/?$/.test(path)) {
    return handleInteraction(req, res);
  }
  return providerCallback(req, res);
});

// ---------------------------------------------------------------- lifecycle

let exiting = false;
function shutdown(reason, code = 0) {
  if (exiting) return;
  exiting = true;
  log(`exiting: ${reason}`);
  server.closeAllConnections?.();
  server.close();
  process.exit(code);
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGHUP', () => shutdown('SIGHUP'));
if (!args['ignore-stdin']) {
  // The harness holds our stdin open; when it dies (or closes it) we go too.
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

server.on('error', (err) => {
  log('server error:', err.message);
  process.exit(1);
});

server.listen(port, '127.0.0.1', () => {
  const actualPort = server.address().port;
  issuer = `http://127.0.0.1:${actualPort}`;
  installProvider();
  log(`listening: issuer ${issuer}, clients [${clients.map((c) => c.client_id).join(', ')}], `
    + `claims in ID token: ${claimsInIdToken}, kid ${currentKid}`);
  process.stdout.write(`${JSON.stringify({ issuer, port: actualPort })}\n`);
});
