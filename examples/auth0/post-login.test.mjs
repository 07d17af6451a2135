// Tests for the Auth0 post-login Action, with Node's built-in test runner:
//   node --test examples/auth0/
// The fake `event` / `api` follow Auth0's documented shapes for exactly the calls the
// Action uses; the fake records every call so each test asserts the complete list.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const require = createRequire(import.meta.url);
const { onExecutePostLogin, onContinuePostLogin } = require('./post-login.js');

const PAGE_URL = 'https://smile.example.com/factor/';
const FACTOR_URL = PAGE_URL; // default: the page URL's origin + path
const SECRETS = Object.freeze({ SMILE_PAGE_URL: PAGE_URL });
const USER_ID = 'auth0|123';
const TENANT = 'my-tenant.us.auth0.com';

const GENERIC = 'The smile check did not complete.';
const CANNOT_REDIRECT = 'The smile check needs an interactive login; it cannot run in this flow.';
const REASONS = [
  ['smiled', 'You smiled.'],
  ['no_face', 'No face was visible.'],
  ['interrupted', 'The check was interrupted.'],
  ['camera_denied', 'Camera access was denied.'],
  ['camera_unavailable', 'No camera was available.'],
  ['error', 'The smile check failed to load.'],
  ['camera_lost', 'The camera stopped during the check.'],
  ['prompt_missed', 'The on-screen prompt was not followed.'],
  ['no_smile', 'No smile was seen.'],
];

const HOUR = 3600 * 1000;
const iso = (msAgo) => new Date(Date.now() - msAgo).toISOString();
const pwd = () => ({ name: 'pwd', timestamp: iso(60 * 1000) });

// ---------------------------------------------------------------- HS256, for real

const b64url = (value) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** An HS256 JWT of `claims`, signed with the secret's UTF-8 bytes (as Auth0 does). */
function signHs256(claims, secret, header = { alg: 'HS256', typ: 'JWT' }) {
  const input = `${b64url(header)}.${b64url(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** The claims of an HS256 JWT whose signature checks out with `secret`; throws otherwise. */
function verifyHs256(token, secret) {
  if (typeof token !== 'string') throw new Error('no token');
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('malformed token');
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
  if (header.alg !== 'HS256') throw new Error('not HS256');
  const expected = createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new Error('bad signature');
  }
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString());
}

/**
 * A fake post-login `api` that records every call as [name, ...args]. Its
 * encodeToken and validateToken do what Auth0 documents, with real HS256: encodeToken
 * adds sub, iss, iat, exp to the payload; validateToken reads the token from the
 * `/continue` POST body or query, checks the signature, `exp`, the required claims
 * and that `state` is the request's, and throws on any failure.
 */
function fakeApi({ canRedirect = true, event = {} } = {}) {
  const calls = [];
  const api = {
    access: {
      deny: (...args) => {
        calls.push(['access.deny', ...args]);
        return api;
      },
    },
    redirect: {
      canRedirect: (...args) => {
        calls.push(['redirect.canRedirect', ...args]);
        return canRedirect;
      },
      sendUserTo: (...args) => {
        calls.push(['redirect.sendUserTo', ...args]);
        return api;
      },
      encodeToken: (options) => {
        calls.push(['redirect.encodeToken', options]);
        const { secret, payload = {}, expiresInSeconds = 900 } = options;
        const iat = nowSeconds();
        const claims = { ...payload, sub: event.user.user_id, iss: TENANT, iat, exp: iat + expiresInSeconds };
        return signHs256(claims, secret);
      },
      validateToken: (options) => {
        calls.push(['redirect.validateToken', options]);
        const { secret, tokenParameterName } = options;
        const request = event.request ?? {};
        const token = request.body?.[tokenParameterName] ?? request.query?.[tokenParameterName];
        const claims = verifyHs256(token, secret);
        for (const claim of ['iat', 'exp', 'sub', 'iss', 'state']) {
          if (!(claim in claims)) throw new Error(`missing ${claim}`);
        }
        if (typeof claims.exp !== 'number' || claims.exp <= nowSeconds()) throw new Error('expired');
        if (claims.state !== request.query?.state) throw new Error('state mismatch');
        return claims;
      },
    },
    authentication: {
      recordMethod: (...args) => {
        calls.push(['authentication.recordMethod', ...args]);
        return api;
      },
    },
    transaction: {
      setMetadata: (...args) => {
        calls.push(['transaction.setMetadata', ...args]);
        return api;
      },
    },
  };
  return { api, calls };
}

/** A fake post-login `event`; pass `undefined` explicitly to leave a part out. */
function fakeEvent(parts = {}) {
  const pick = (key, fallback) => (Object.hasOwn(parts, key) ? parts[key] : fallback);
  return {
    secrets: pick('secrets', SECRETS),
    authentication: { methods: pick('methods', [pwd()]) },
    request: {
      query: pick('query', {}),
      body: pick('body', {}),
      hostname: pick('hostname', TENANT),
      language: 'en',
    },
    transaction: { metadata: pick('metadata', {}) },
    user: { user_id: USER_ID },
  };
}

async function execute(event, apiOptions) {
  const { api, calls } = fakeApi({ ...apiOptions, event });
  await onExecutePostLogin(event, api);
  return calls;
}

/** Every call of onContinuePostLogin. */
async function resumeAll(event, apiOptions) {
  const { api, calls } = fakeApi({ ...apiOptions, event });
  await onContinuePostLogin(event, api);
  return calls;
}

const CLEAR_NONCE = ['transaction.setMetadata', 'smile_nonce', null];

/** The calls of onContinuePostLogin but the nonce's clearing (checked on its own below). */
async function resume(event, apiOptions) {
  const calls = await resumeAll(event, apiOptions);
  return calls.filter((c) => JSON.stringify(c) !== JSON.stringify(CLEAR_NONCE));
}

const REDIRECTED = [['redirect.canRedirect'], ['redirect.sendUserTo', PAGE_URL]];

// ---------------------------------------------------------------- configuration

test('config: missing SMILE_PAGE_URL denies (fail closed), no redirect', async () => {
  const calls = await execute(fakeEvent({ secrets: {} }));
  assert.deepEqual(calls, [
    ['access.deny', 'The smile check is not configured correctly: SMILE_PAGE_URL is not set.'],
  ]);
});

test('config: no event.secrets at all denies', async () => {
  const calls = await execute(fakeEvent({ secrets: undefined }));
  assert.equal(calls.length, 1);
  assert.equal(calls[0][0], 'access.deny');
  assert.match(calls[0][1], /SMILE_PAGE_URL is not set/);
});

test('config: blank SMILE_PAGE_URL denies', async () => {
  const calls = await execute(fakeEvent({ secrets: { SMILE_PAGE_URL: '   ' } }));
  assert.deepEqual(calls, [
    ['access.deny', 'The smile check is not configured correctly: SMILE_PAGE_URL is not set.'],
  ]);
});

for (const bad of [
  'http://smile.example.com/',
  'smile.example.com/factor/',
  '/factor/',
  'not a url',
  'javascript:alert(1)',
  'ftp://smile.example.com/',
  'https://user:pass@smile.example.com/',
]) {
  test(`config: invalid SMILE_PAGE_URL ${JSON.stringify(bad)} denies, no redirect`, async () => {
    const calls = await execute(fakeEvent({ secrets: { SMILE_PAGE_URL: bad } }));
    assert.deepEqual(calls, [
      ['access.deny', 'The smile check is not configured correctly: SMILE_PAGE_URL must be an https:// URL.'],
    ]);
  });
}

test('config: invalid SMILE_FACTOR_URL denies', async () => {
  const calls = await execute(
    fakeEvent({ secrets: { ...SECRETS, SMILE_FACTOR_URL: 'smile-factor' } }),
  );
  assert.deepEqual(calls, [
    ['access.deny', 'The smile check is not configured correctly: SMILE_FACTOR_URL must be an https:// URL.'],
  ]);
});

for (const bad of ['abc', '-5', '1.5', '1e3', '31536001', '9999999999']) {
  test(`config: invalid SMILE_TTL_SECONDS ${JSON.stringify(bad)} denies`, async () => {
    const calls = await execute(fakeEvent({ secrets: { ...SECRETS, SMILE_TTL_SECONDS: bad } }));
    assert.equal(calls.length, 1);
    assert.equal(calls[0][0], 'access.deny');
    assert.match(calls[0][1], /SMILE_TTL_SECONDS must be a whole number/);
  });
}

for (const bad of ['Skip', 'allow', 'maybe']) {
  test(`config: invalid SMILE_WHEN_CANNOT_REDIRECT ${JSON.stringify(bad)} denies`, async () => {
    const calls = await execute(
      fakeEvent({ secrets: { ...SECRETS, SMILE_WHEN_CANNOT_REDIRECT: bad } }),
      { canRedirect: false },
    );
    assert.deepEqual(calls, [
      ['access.deny', 'The smile check is not configured correctly: SMILE_WHEN_CANNOT_REDIRECT must be "skip" or "deny".'],
    ]);
  });
}

test('config: a config error denies even when a fresh record exists', async () => {
  const calls = await execute(
    fakeEvent({
      secrets: { SMILE_PAGE_URL: 'http://smile.example.com/factor/' },
      methods: [pwd(), { name: 'http://smile.example.com/factor/', timestamp: iso(1000) }],
    }),
  );
  assert.equal(calls.length, 1);
  assert.equal(calls[0][0], 'access.deny');
});

test('config: onContinuePostLogin with a config error denies and records nothing', async () => {
  const calls = await resume(fakeEvent({ secrets: {}, query: { notsmiling: 'true' } }));
  assert.deepEqual(calls, [
    ['access.deny', 'The smile check is not configured correctly: SMILE_PAGE_URL is not set.'],
  ]);
});

// ---------------------------------------------------------------- redirect

test('redirect: no record of our factor sends the user to the page, nothing else', async () => {
  const calls = await execute(fakeEvent());
  assert.deepEqual(calls, REDIRECTED);
});

test('redirect: sendUserTo gets the page URL only (Auth0 appends state), no query options', async () => {
  const calls = await execute(fakeEvent());
  const send = calls.filter((c) => c[0] === 'redirect.sendUserTo');
  assert.equal(send.length, 1);
  assert.deepEqual(send[0], ['redirect.sendUserTo', PAGE_URL]);
  assert.ok(!send[0][1].includes('state='));
});

test('redirect: page URL is normalised (bare origin gets a slash)', async () => {
  const calls = await execute(fakeEvent({ secrets: { SMILE_PAGE_URL: ' https://smile.example.com ' } }));
  assert.deepEqual(calls, [['redirect.canRedirect'], ['redirect.sendUserTo', 'https://smile.example.com/']]);
});

test('redirect: a page URL with a query keeps it; the factor URL is origin + path', async () => {
  const page = 'https://smile.example.com/factor/?return=prod';
  const sent = await execute(fakeEvent({ secrets: { SMILE_PAGE_URL: page } }));
  assert.deepEqual(sent, [['redirect.canRedirect'], ['redirect.sendUserTo', page]]);
  const skipped = await execute(
    fakeEvent({
      secrets: { SMILE_PAGE_URL: page },
      methods: [pwd(), { name: 'https://smile.example.com/factor/', timestamp: iso(1000) }],
    }),
  );
  assert.deepEqual(skipped, []);
});

test('redirect: canRedirect false, SMILE_WHEN_CANNOT_REDIRECT=skip: login continues, no deny', async () => {
  const calls = await execute(
    fakeEvent({ secrets: { ...SECRETS, SMILE_WHEN_CANNOT_REDIRECT: 'skip' } }),
    { canRedirect: false },
  );
  assert.deepEqual(calls, [['redirect.canRedirect']]);
});

test('redirect: canRedirect false, default (deny): denies, no sendUserTo', async () => {
  const calls = await execute(fakeEvent(), { canRedirect: false });
  assert.deepEqual(calls, [['redirect.canRedirect'], ['access.deny', CANNOT_REDIRECT]]);
});

test('redirect: canRedirect false, SMILE_WHEN_CANNOT_REDIRECT=deny: denies, no sendUserTo', async () => {
  const calls = await execute(
    fakeEvent({ secrets: { ...SECRETS, SMILE_WHEN_CANNOT_REDIRECT: 'deny' } }),
    { canRedirect: false },
  );
  assert.deepEqual(calls, [['redirect.canRedirect'], ['access.deny', CANNOT_REDIRECT]]);
});

test('redirect: canRedirect false but a fresh record exists: skipped without denying', async () => {
  const calls = await execute(
    fakeEvent({ methods: [pwd(), { name: FACTOR_URL, timestamp: iso(1000) }] }),
    { canRedirect: false },
  );
  assert.deepEqual(calls, []);
});

// ---------------------------------------------------------------- session record

test('record: fresh record by `name` (ISO timestamp) skips: no redirect, no deny', async () => {
  const calls = await execute(
    fakeEvent({ methods: [pwd(), { name: FACTOR_URL, timestamp: iso(10 * 60 * 1000) }] }),
  );
  assert.deepEqual(calls, []);
});

test('record: fresh record by `url` skips', async () => {
  const calls = await execute(
    fakeEvent({ methods: [pwd(), { url: FACTOR_URL, timestamp: iso(10 * 60 * 1000) }] }),
  );
  assert.deepEqual(calls, []);
});

test('record: fresh record with a millisecond-number timestamp skips', async () => {
  const calls = await execute(
    fakeEvent({ methods: [pwd(), { name: FACTOR_URL, timestamp: Date.now() - 5000 }] }),
  );
  assert.deepEqual(calls, []);
});

test('record: stale record (2 h old, default TTL 1 h) redirects', async () => {
  const calls = await execute(
    fakeEvent({ methods: [pwd(), { name: FACTOR_URL, timestamp: iso(2 * HOUR) }] }),
  );
  assert.deepEqual(calls, REDIRECTED);
});

test('record: stale by `url` with a number timestamp redirects', async () => {
  const calls = await execute(
    fakeEvent({ methods: [{ url: FACTOR_URL, timestamp: Date.now() - 2 * HOUR }] }),
  );
  assert.deepEqual(calls, REDIRECTED);
});

test('record: one stale and one fresh record of ours skips', async () => {
  const calls = await execute(
    fakeEvent({
      methods: [
        { name: FACTOR_URL, timestamp: iso(5 * HOUR) },
        { name: FACTOR_URL, timestamp: iso(60 * 1000) },
      ],
    }),
  );
  assert.deepEqual(calls, []);
});

test('record: TTL boundary (exactly TTL old is stale, 1 ms younger is fresh)', async (t) => {
  const now = Date.parse('2026-01-01T12:00:00.000Z');
  t.mock.method(Date, 'now', () => now);
  const at = (ms) => new Date(now - ms).toISOString();
  const stale = await execute(fakeEvent({ methods: [{ name: FACTOR_URL, timestamp: at(HOUR) }] }));
  assert.deepEqual(stale, REDIRECTED);
  const fresh = await execute(fakeEvent({ methods: [{ name: FACTOR_URL, timestamp: at(HOUR - 1) }] }));
  assert.deepEqual(fresh, []);
  const justNow = await execute(fakeEvent({ methods: [{ name: FACTOR_URL, timestamp: now }] }));
  assert.deepEqual(justNow, []);
});

test('record: SMILE_TTL_SECONDS=60 (30 s old skips, 120 s old redirects)', async () => {
  const secrets = { ...SECRETS, SMILE_TTL_SECONDS: '60' };
  const fresh = await execute(fakeEvent({ secrets, methods: [{ name: FACTOR_URL, timestamp: iso(30 * 1000) }] }));
  assert.deepEqual(fresh, []);
  const stale = await execute(fakeEvent({ secrets, methods: [{ name: FACTOR_URL, timestamp: iso(120 * 1000) }] }));
  assert.deepEqual(stale, REDIRECTED);
});

test('record: SMILE_TTL_SECONDS=0 asks on every login', async (t) => {
  const now = Date.now();
  t.mock.method(Date, 'now', () => now);
  const calls = await execute(
    fakeEvent({ secrets: { ...SECRETS, SMILE_TTL_SECONDS: '0' }, methods: [{ name: FACTOR_URL, timestamp: now }] }),
  );
  assert.deepEqual(calls, REDIRECTED);
});

test('record: record of another factor (or mfa, or pwd) redirects', async () => {
  const calls = await execute(
    fakeEvent({
      methods: [
        pwd(),
        { name: 'mfa', type: 'otp', timestamp: iso(1000) },
        { name: 'https://other.example.com/factor/', timestamp: iso(1000) },
        { url: 'https://smile.example.com/other/', timestamp: iso(1000) },
        { name: 'https://smile.example.com/factor', timestamp: iso(1000) }, // no trailing slash
      ],
    }),
  );
  assert.deepEqual(calls, REDIRECTED);
});

test('record: custom SMILE_FACTOR_URL is matched; the page URL record no longer is', async () => {
  const custom = 'https://smile.example.com/factors/smile-v1';
  const secrets = { ...SECRETS, SMILE_FACTOR_URL: custom };
  const skipped = await execute(fakeEvent({ secrets, methods: [{ url: custom, timestamp: iso(1000) }] }));
  assert.deepEqual(skipped, []);
  const asked = await execute(fakeEvent({ secrets, methods: [{ name: FACTOR_URL, timestamp: iso(1000) }] }));
  assert.deepEqual(asked, REDIRECTED);
});

for (const [label, timestamp] of [
  ['unparseable string', 'not a date'],
  ['empty string', ''],
  ['numeric string', String(Date.now() - 1000)],
  ['loose date string (Date#toString)', new Date(Date.now() - 1000).toString()],
  ['loose date string (Date#toUTCString)', new Date(Date.now() - 1000).toUTCString()],
  ['invalid ISO date', '2026-13-45T99:99:99Z'],
  ['null', null],
  ['missing', undefined],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['object', {}],
  ['boolean', true],
]) {
  test(`record: unparseable timestamp (${label}) is not fresh: redirects`, async () => {
    const record = { name: FACTOR_URL };
    if (timestamp !== undefined) record.timestamp = timestamp;
    const calls = await execute(fakeEvent({ methods: [pwd(), record] }));
    assert.deepEqual(calls, REDIRECTED);
  });
}

test('record: future timestamp is not fresh: redirects', async () => {
  const calls = await execute(
    fakeEvent({ methods: [{ name: FACTOR_URL, timestamp: new Date(Date.now() + 60 * 1000).toISOString() }] }),
  );
  assert.deepEqual(calls, REDIRECTED);
});

test('record: no methods array (undefined) redirects', async () => {
  const calls = await execute(fakeEvent({ methods: undefined }));
  assert.deepEqual(calls, REDIRECTED);
});

test('record: no event.authentication at all redirects', async () => {
  const event = fakeEvent();
  delete event.authentication;
  const calls = await execute(event);
  assert.deepEqual(calls, REDIRECTED);
});

test('record: methods not an array, or holding null entries, redirects', async () => {
  const obj = await execute(fakeEvent({ methods: { name: FACTOR_URL, timestamp: iso(1000) } }));
  assert.deepEqual(obj, REDIRECTED);
  const nulls = await execute(fakeEvent({ methods: [null, 'pwd', 42] }));
  assert.deepEqual(nulls, REDIRECTED);
});

// ---------------------------------------------------------------- continue

test('continue: notsmiling=true records the factor once, no deny', async () => {
  const calls = await resume(fakeEvent({ query: { state: 'abc', notsmiling: 'true' } }));
  assert.deepEqual(calls, [['authentication.recordMethod', FACTOR_URL]]);
});

test('continue: notsmiling=true records the custom SMILE_FACTOR_URL', async () => {
  const custom = 'https://smile.example.com/factors/smile-v1';
  const calls = await resume(
    fakeEvent({ secrets: { ...SECRETS, SMILE_FACTOR_URL: custom }, query: { notsmiling: 'true' } }),
  );
  assert.deepEqual(calls, [['authentication.recordMethod', custom]]);
});

for (const [reason, message] of REASONS) {
  test(`continue: notsmiling=false&reason=${reason} denies with "${message}"`, async () => {
    const calls = await resume(fakeEvent({ query: { state: 'abc', notsmiling: 'false', reason } }));
    assert.deepEqual(calls, [['access.deny', message]]);
  });
}

test('continue: missing query denies (generic)', async () => {
  const calls = await resume(fakeEvent({ query: undefined }));
  assert.deepEqual(calls, [['access.deny', GENERIC]]);
});

test('continue: empty query denies (generic)', async () => {
  const calls = await resume(fakeEvent({ query: {} }));
  assert.deepEqual(calls, [['access.deny', GENERIC]]);
});

test('continue: no event.request denies (generic)', async () => {
  const event = fakeEvent();
  delete event.request;
  const calls = await resume(event);
  assert.deepEqual(calls, [['access.deny', GENERIC]]);
});

for (const [label, query] of [
  ['notsmiling=TRUE', { notsmiling: 'TRUE' }],
  ['notsmiling=True', { notsmiling: 'True' }],
  ['notsmiling=1', { notsmiling: '1' }],
  ['notsmiling=yes', { notsmiling: 'yes' }],
  ['notsmiling= true', { notsmiling: ' true' }],
  ['notsmiling= (empty)', { notsmiling: '' }],
  ['notsmiling as boolean true', { notsmiling: true }],
  ['notsmiling as array ["true"]', { notsmiling: ['true'] }],
  ['notsmiling repeated ["true","true"]', { notsmiling: ['true', 'true'] }],
  ['notsmiling repeated ["false","true"]', { notsmiling: ['false', 'true'] }],
  ['notsmiling=true with reason=smiled', { notsmiling: 'true', reason: 'smiled' }],
  ['notsmiling=true with reason= (empty)', { notsmiling: 'true', reason: '' }],
  ['notsmiling=false without reason', { notsmiling: 'false' }],
  ['notsmiling=false with unknown reason', { notsmiling: 'false', reason: 'laughed' }],
  ['notsmiling=false with reason=SMILED', { notsmiling: 'false', reason: 'SMILED' }],
  ['notsmiling=false with reason=toString', { notsmiling: 'false', reason: 'toString' }],
  ['notsmiling=false with reason=__proto__', { notsmiling: 'false', reason: '__proto__' }],
  ['notsmiling=false with reason array', { notsmiling: 'false', reason: ['smiled'] }],
  ['reason=smiled without notsmiling', { reason: 'smiled' }],
  ['notsmiling only inherited from the prototype', Object.create({ notsmiling: 'true' })],
]) {
  test(`continue: unexpected ${label} denies (generic), records nothing`, async () => {
    const calls = await resume(fakeEvent({ query }));
    assert.deepEqual(calls, [['access.deny', GENERIC]]);
  });
}

test('continue: never redirects or asks canRedirect', async () => {
  for (const query of [{ notsmiling: 'true' }, { notsmiling: 'false', reason: 'smiled' }, {}]) {
    const calls = await resume(fakeEvent({ query }));
    assert.ok(calls.every(([name]) => !name.startsWith('redirect.')), JSON.stringify(calls));
  }
});

// ---------------------------------------------------------------- signed mode

const CTX_SECRET = 'ctx-' + 'c'.repeat(40);
const VERDICT_SECRET = 'verdict-' + 'v'.repeat(40);
const VERDICT_SECRET_PREV = 'verdict-prev-' + 'p'.repeat(40);
const ISSUER = 'https://smile.example.com';
const SIGNED = Object.freeze({
  ...SECRETS,
  SMILE_CTX_SECRET: CTX_SECRET,
  SMILE_VERDICT_SECRET: VERDICT_SECRET,
  SMILE_ISSUER: ISSUER,
});
const STATE = 'hKFo2SB4c3RhdGUtZnJvbS1hdXRoMA';
const NONCE = randomBytes(16).toString('base64url');
const UNSIGNED = 'The smile check result was not signed by the verifier; this login requires a signed result.';
const unverified = (what) => `The smile check result could not be verified: ${what}.`;
const CONFIG = 'The smile check is not configured correctly: ';

/** Verdict claims as the server mints them (issue 14, protocol item 5). */
function verdictClaims(overrides = {}) {
  const iat = nowSeconds();
  return {
    iss: ISSUER,
    aud: TENANT,
    sub: USER_ID,
    state: STATE,
    nonce: NONCE,
    jti: randomBytes(16).toString('base64url'),
    iat,
    exp: iat + 120,
    notsmiling: true,
    frames: 12,
    prompts: '2/2',
    mode: 'straight',
    v: 1,
    ...overrides,
  };
}

const verdictToken = (overrides, secret = VERDICT_SECRET) =>
  signHs256(verdictClaims(overrides), secret, { alg: 'HS256', typ: 'JWT', kid: 'v1' });

/** The event Auth0 builds when the page posts `smile_token` to /continue?state=STATE. */
function signedContinue(token, parts = {}) {
  return fakeEvent({
    secrets: SIGNED,
    query: { state: STATE },
    body: { smile_token: token },
    metadata: { smile_nonce: NONCE },
    ...parts,
  });
}

const validated = (secret) => ['redirect.validateToken', { secret, tokenParameterName: 'smile_token' }];
const RECORDED = ['authentication.recordMethod', FACTOR_URL];

test('signed: execute keeps a 128-bit nonce and sends a 300 s smile-ctx session_token', async () => {
  const calls = await execute(fakeEvent({ secrets: SIGNED }));
  assert.deepEqual(calls.map(([name]) => name), [
    'redirect.canRedirect',
    'transaction.setMetadata',
    'redirect.encodeToken',
    'redirect.sendUserTo',
  ]);
  const [, key, nonce] = calls[1];
  assert.equal(key, 'smile_nonce');
  assert.equal(Buffer.from(nonce, 'base64url').length, 16);
  assert.deepEqual(calls[2][1], {
    secret: CTX_SECRET,
    expiresInSeconds: 300,
    payload: { use: 'smile-ctx', nonce, v: 1 },
  });

  const [, url, options] = calls[3];
  assert.equal(url, PAGE_URL);
  assert.deepEqual(Object.keys(options.query), ['session_token']);
  const ctx = verifyHs256(options.query.session_token, CTX_SECRET);
  assert.equal(ctx.use, 'smile-ctx');
  assert.equal(ctx.v, 1);
  assert.equal(ctx.nonce, nonce);
  assert.equal(ctx.sub, USER_ID);
  assert.equal(ctx.iss, TENANT);
  assert.equal(ctx.exp - ctx.iat, 300);
  // Signed with the ctx key only: the verdict key cannot verify it.
  assert.throws(() => verifyHs256(options.query.session_token, VERDICT_SECRET), /bad signature/);
});

test('signed: every execution gets a fresh nonce', async () => {
  const nonces = new Set();
  for (let i = 0; i < 5; i++) {
    const calls = await execute(fakeEvent({ secrets: SIGNED }));
    nonces.add(calls.find(([name]) => name === 'transaction.setMetadata')[2]);
  }
  assert.equal(nonces.size, 5);
});

test('signed: a fresh record still skips; canRedirect false still denies, no token made', async () => {
  const skipped = await execute(
    fakeEvent({ secrets: SIGNED, methods: [{ name: FACTOR_URL, timestamp: iso(1000) }] }),
  );
  assert.deepEqual(skipped, []);
  const denied = await execute(fakeEvent({ secrets: SIGNED }), { canRedirect: false });
  assert.deepEqual(denied, [['redirect.canRedirect'], ['access.deny', CANNOT_REDIRECT]]);
});

test('signed: a valid verdict (notsmiling: true) posted to /continue records the factor', async () => {
  const calls = await resume(signedContinue(verdictToken()));
  assert.deepEqual(calls, [validated(VERDICT_SECRET), RECORDED]);
});

test('signed: the nonce is cleared as soon as a verdict arrives, whatever it says', async () => {
  for (const overrides of [{}, { notsmiling: false, reason: 'smiled' }, { nonce: 'other' }]) {
    const calls = await resumeAll(signedContinue(verdictToken(overrides)));
    assert.deepEqual(calls[0], CLEAR_NONCE, JSON.stringify(overrides));
    assert.equal(calls.filter((c) => c[0] === 'transaction.setMetadata').length, 1);
  }
  // A second continue of the same transaction finds no nonce: the same verdict fails.
  const again = await resume(signedContinue(verdictToken(), { metadata: {} }));
  assert.deepEqual(again, [validated(VERDICT_SECRET), ['access.deny', unverified('nonce')]]);
});

test('signed: a pass needs every prompt met and a well-formed prompts claim', async () => {
  for (const prompts of ['0/0', '3/3']) {
    assert.deepEqual(await resume(signedContinue(verdictToken({ prompts }))), [validated(VERDICT_SECRET), RECORDED], prompts);
  }
  const missed = await resume(signedContinue(verdictToken({ prompts: '1/2' })));
  assert.deepEqual(missed, [validated(VERDICT_SECRET), ['access.deny', 'The on-screen prompt was not followed.']]);
  for (const prompts of [undefined, '', '2', '2/2/2', 'a/b', 2]) {
    const calls = await resume(signedContinue(verdictToken({ prompts })));
    assert.deepEqual(calls, [validated(VERDICT_SECRET), ['access.deny', unverified('prompts')]], String(prompts));
  }
});

test('signed: SMILE_MODE picks the mode the verdict must carry (straight by default)', async () => {
  const smileSecrets = { ...SIGNED, SMILE_MODE: 'smile' };
  // Default: straight; a verdict without a mode is a straight one.
  assert.deepEqual(await resume(signedContinue(verdictToken({ mode: undefined }))), [validated(VERDICT_SECRET), RECORDED]);
  assert.deepEqual(await resume(signedContinue(verdictToken({ mode: 'smile' }))),
    [validated(VERDICT_SECRET), ['access.deny', unverified('mode')]]);
  assert.deepEqual(await resume(signedContinue(verdictToken({ mode: 'smile' }), { secrets: smileSecrets })),
    [validated(VERDICT_SECRET), RECORDED]);
  for (const mode of ['straight', undefined]) {
    assert.deepEqual(await resume(signedContinue(verdictToken({ mode }), { secrets: smileSecrets })),
      [validated(VERDICT_SECRET), ['access.deny', unverified('mode')]], String(mode));
  }
  const denied = await resume(signedContinue(verdictToken({ mode: 'smile', notsmiling: false, reason: 'no_smile' }), { secrets: smileSecrets }));
  assert.deepEqual(denied, [validated(VERDICT_SECRET), ['access.deny', 'No smile was seen.']]);
  const bad = await execute(fakeEvent({ secrets: { ...SIGNED, SMILE_MODE: 'laugh' } }));
  assert.deepEqual(bad, [['access.deny', `${CONFIG}SMILE_MODE must be "straight" or "smile".`]]);
});

test('signed: a valid verdict in the /continue query is accepted too (validateToken reads both)', async () => {
  const event = signedContinue(undefined, { body: {}, query: { state: STATE, smile_token: verdictToken() } });
  assert.deepEqual(await resume(event), [validated(VERDICT_SECRET), RECORDED]);
});

for (const [reason, message] of REASONS) {
  test(`signed: a valid verdict notsmiling: false, reason: ${reason} denies with "${message}"`, async () => {
    const calls = await resume(signedContinue(verdictToken({ notsmiling: false, reason })));
    assert.deepEqual(calls, [validated(VERDICT_SECRET), ['access.deny', message]]);
  });
}

for (const [label, overrides] of [
  ['notsmiling as the string "true"', { notsmiling: 'true' }],
  ['notsmiling missing', { notsmiling: undefined }],
  ['notsmiling: true with a reason', { reason: 'smiled' }],
  ['notsmiling: false without a reason', { notsmiling: false }],
  ['notsmiling: false with an unknown reason', { notsmiling: false, reason: 'laughed' }],
]) {
  test(`signed: a valid verdict with ${label} denies (generic)`, async () => {
    const calls = await resume(signedContinue(verdictToken(overrides)));
    assert.deepEqual(calls, [validated(VERDICT_SECRET), ['access.deny', GENERIC]]);
  });
}

test('signed: a tampered payload (smiled -> passed, old signature) is denied', async () => {
  const [header, , signature] = verdictToken({ notsmiling: false, reason: 'smiled' }).split('.');
  const forged = `${header}.${b64url(verdictClaims())}.${signature}`;
  const calls = await resume(signedContinue(forged));
  assert.deepEqual(calls, [validated(VERDICT_SECRET), ['access.deny', unverified('signature, expiry or state')]]);
});

test('signed: a token signed with the wrong key is denied', async () => {
  const calls = await resume(signedContinue(verdictToken({}, 'w'.repeat(44))));
  assert.deepEqual(calls, [validated(VERDICT_SECRET), ['access.deny', unverified('signature, expiry or state')]]);
});

test('signed: a token signed with the ctx key (reflected) is denied', async () => {
  const calls = await resume(signedContinue(verdictToken({}, CTX_SECRET)));
  assert.deepEqual(calls.at(-1), ['access.deny', unverified('signature, expiry or state')]);
});

test('signed: an unsigned (alg: none) token is denied', async () => {
  const none = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(verdictClaims())}.`;
  const calls = await resume(signedContinue(none));
  assert.deepEqual(calls.at(-1), ['access.deny', unverified('signature, expiry or state')]);
});

test('signed: garbage in smile_token is denied', async () => {
  for (const garbage of ['', 'abc', 'a.b.c', ['x', 'y']]) {
    const calls = await resume(signedContinue(garbage));
    assert.deepEqual(calls.at(-1), ['access.deny', unverified('signature, expiry or state')]);
  }
});

test('signed: during rotation a token signed with SMILE_VERDICT_SECRET_PREV is accepted', async () => {
  const secrets = { ...SIGNED, SMILE_VERDICT_SECRET_PREV: VERDICT_SECRET_PREV };
  const calls = await resume(signedContinue(verdictToken({}, VERDICT_SECRET_PREV), { secrets }));
  assert.deepEqual(calls, [validated(VERDICT_SECRET), validated(VERDICT_SECRET_PREV), RECORDED]);
});

test('signed: during rotation a current-key token is checked once, PREV not asked', async () => {
  const secrets = { ...SIGNED, SMILE_VERDICT_SECRET_PREV: VERDICT_SECRET_PREV };
  const calls = await resume(signedContinue(verdictToken(), { secrets }));
  assert.deepEqual(calls, [validated(VERDICT_SECRET), RECORDED]);
});

test('signed: the previous key is refused once SMILE_VERDICT_SECRET_PREV is removed', async () => {
  const calls = await resume(signedContinue(verdictToken({}, VERDICT_SECRET_PREV)));
  assert.deepEqual(calls, [validated(VERDICT_SECRET), ['access.deny', unverified('signature, expiry or state')]]);
});

test('signed: an expired token is denied', async () => {
  const iat = nowSeconds() - 300;
  const calls = await resume(signedContinue(verdictToken({ iat, exp: iat + 120 })));
  assert.deepEqual(calls.at(-1), ['access.deny', unverified('signature, expiry or state')]);
});

test('signed: a token for another login (state mismatch) is denied', async () => {
  const calls = await resume(signedContinue(verdictToken({ state: 'another-login-state' })));
  assert.deepEqual(calls.at(-1), ['access.deny', unverified('signature, expiry or state')]);
});

test('signed: a token for another user (sub mismatch) is denied', async () => {
  const calls = await resume(signedContinue(verdictToken({ sub: 'auth0|456' })));
  assert.deepEqual(calls, [validated(VERDICT_SECRET), ['access.deny', unverified('user')]]);
});

test('signed: a token with another transaction nonce is denied', async () => {
  const other = await resume(signedContinue(verdictToken({ nonce: randomBytes(16).toString('base64url') })));
  assert.deepEqual(other.at(-1), ['access.deny', unverified('nonce')]);
  const noClaim = await resume(signedContinue(verdictToken({ nonce: undefined })));
  assert.deepEqual(noClaim.at(-1), ['access.deny', unverified('nonce')]);
  // No nonce kept in this transaction (execute never ran in it): nothing can match.
  const noMetadata = await resume(signedContinue(verdictToken(), { metadata: {} }));
  assert.deepEqual(noMetadata.at(-1), ['access.deny', unverified('nonce')]);
});

test('signed: a token from another issuer is denied', async () => {
  for (const iss of ['https://evil.example.com', `${ISSUER}/`, TENANT]) {
    const calls = await resume(signedContinue(verdictToken({ iss })));
    assert.deepEqual(calls.at(-1), ['access.deny', unverified('issuer')], iss);
  }
});

test('signed: a token for another tenant (aud mismatch) is denied', async () => {
  for (const aud of [undefined, 'other-tenant.us.auth0.com', `https://${TENANT}/continue`, `https://${TENANT}.evil.com/`, [TENANT]]) {
    const calls = await resume(signedContinue(verdictToken({ aud })));
    assert.deepEqual(calls.at(-1), ['access.deny', unverified('audience')], String(aud));
  }
});

test('signed: aud may be the bare tenant host or its https URL', async () => {
  for (const aud of [TENANT, `https://${TENANT}/`, `https://${TENANT}`, TENANT.toUpperCase()]) {
    const calls = await resume(signedContinue(verdictToken({ aud })));
    assert.deepEqual(calls.at(-1), RECORDED, aud);
  }
});

test('signed: SMILE_TENANT, when set, is the expected aud instead of the request hostname', async () => {
  const secrets = { ...SIGNED, SMILE_TENANT: 'login.example.com' };
  const custom = await resume(signedContinue(verdictToken({ aud: 'login.example.com' }), { secrets }));
  assert.deepEqual(custom.at(-1), RECORDED);
  const hostname = await resume(signedContinue(verdictToken({ aud: TENANT }), { secrets }));
  assert.deepEqual(hostname.at(-1), ['access.deny', unverified('audience')]);
});

test('signed: a verdict living longer than 120 s (exp - iat) is denied', async () => {
  const iat = nowSeconds();
  for (const claims of [{ iat, exp: iat + 121 }, { iat, exp: iat + 900 }, { iat: String(iat), exp: iat + 60 }, { iat: iat + 10, exp: iat + 10 }]) {
    const calls = await resume(signedContinue(verdictToken(claims)));
    assert.deepEqual(calls.at(-1), ['access.deny', unverified('lifetime')], JSON.stringify(claims));
  }
});

test('signed: a verdict of another protocol version is denied', async () => {
  for (const v of [undefined, 2, '1']) {
    const calls = await resume(signedContinue(verdictToken({ v })));
    assert.deepEqual(calls.at(-1), ['access.deny', unverified('version')], String(v));
  }
});

test('signed: an unsigned notsmiling=true query is denied, validateToken not even asked', async () => {
  for (const query of [{ state: STATE, notsmiling: 'true' }, { notsmiling: 'true' }, {}]) {
    const calls = await resume(fakeEvent({ secrets: SIGNED, query, metadata: { smile_nonce: NONCE } }));
    assert.deepEqual(calls, [['access.deny', UNSIGNED]]);
  }
});

test('signed: a valid token does not let a query notsmiling override a smiled verdict', async () => {
  const event = signedContinue(verdictToken({ notsmiling: false, reason: 'smiled' }), {
    query: { state: STATE, notsmiling: 'true' },
  });
  assert.deepEqual((await resume(event)).at(-1), ['access.deny', 'You smiled.']);
});

for (const [label, extra, message] of [
  ['SMILE_CTX_SECRET alone', { SMILE_CTX_SECRET: CTX_SECRET }, /SMILE_VERDICT_SECRET is not set/],
  ['SMILE_VERDICT_SECRET alone', { SMILE_VERDICT_SECRET: VERDICT_SECRET }, /SMILE_CTX_SECRET is not set/],
  ['SMILE_VERDICT_SECRET_PREV alone', { SMILE_VERDICT_SECRET_PREV: VERDICT_SECRET_PREV }, /SMILE_CTX_SECRET is not set/],
  ['both secrets without SMILE_ISSUER', { SMILE_CTX_SECRET: CTX_SECRET, SMILE_VERDICT_SECRET: VERDICT_SECRET }, /SMILE_ISSUER is not set/],
  ['a short SMILE_CTX_SECRET', { ...SIGNED, SMILE_CTX_SECRET: 'short' }, /SMILE_CTX_SECRET must be at least 32/],
  ['a short SMILE_VERDICT_SECRET_PREV', { ...SIGNED, SMILE_VERDICT_SECRET_PREV: 'x'.repeat(31) }, /SMILE_VERDICT_SECRET_PREV must be at least 32/],
  ['the same key both ways', { ...SIGNED, SMILE_VERDICT_SECRET: CTX_SECRET }, /SMILE_CTX_SECRET must differ/],
  ['an http SMILE_ISSUER', { ...SIGNED, SMILE_ISSUER: 'http://smile.example.com' }, /SMILE_ISSUER must be an https/],
  ['a URL in SMILE_TENANT', { ...SIGNED, SMILE_TENANT: 'https://login.example.com/' }, /SMILE_TENANT must be a host name/],
]) {
  test(`signed config: ${label} denies both handlers (fail closed)`, async () => {
    const secrets = { ...SECRETS, ...extra };
    const sent = await execute(fakeEvent({ secrets }));
    const back = await resume(fakeEvent({ secrets, query: { notsmiling: 'true' } }));
    for (const calls of [sent, back]) {
      assert.equal(calls.length, 1);
      assert.equal(calls[0][0], 'access.deny');
      assert.ok(calls[0][1].startsWith(CONFIG));
      assert.match(calls[0][1], message);
      assert.ok(!calls[0][1].includes(CTX_SECRET) && !calls[0][1].includes(VERDICT_SECRET));
    }
  });
}

test('unsigned mode (no secrets): the query decides as before, a smile_token is ignored', async () => {
  const calls = await resume(
    fakeEvent({ query: { state: STATE, notsmiling: 'true' }, body: { smile_token: verdictToken({ notsmiling: false, reason: 'smiled' }) } }),
  );
  assert.deepEqual(calls, [RECORDED]);
  const sent = await execute(fakeEvent());
  assert.deepEqual(sent, REDIRECTED);
});

test('exports exactly the two Auth0 handlers, both async', () => {
  const mod = require('./post-login.js');
  assert.deepEqual(Object.keys(mod).sort(), ['onContinuePostLogin', 'onExecutePostLogin']);
  assert.equal(mod.onExecutePostLogin.constructor.name, 'AsyncFunction');
  assert.equal(mod.onContinuePostLogin.constructor.name, 'AsyncFunction');
});
