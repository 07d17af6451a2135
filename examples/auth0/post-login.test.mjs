// Tests for the Auth0 post-login Action, with Node's built-in test runner:
//   node --test examples/auth0/
// The fake `event` / `api` follow Auth0's documented shapes for exactly the calls the
// Action uses; the fake records every call so each test asserts the complete list.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { onExecutePostLogin, onContinuePostLogin } = require('./post-login.js');

const PAGE_URL = 'https://smile.example.com/factor/';
const FACTOR_URL = PAGE_URL; // default: the page URL's origin + path
const SECRETS = Object.freeze({ SMILE_PAGE_URL: PAGE_URL });

const GENERIC = 'The smile check did not complete.';
const CANNOT_REDIRECT = 'The smile check needs an interactive login; it cannot run in this flow.';
const REASONS = [
  ['smiled', 'You smiled.'],
  ['no_face', 'No face was visible.'],
  ['interrupted', 'The check was interrupted.'],
  ['camera_denied', 'Camera access was denied.'],
  ['camera_unavailable', 'No camera was available.'],
  ['error', 'The smile check failed to load.'],
];

const HOUR = 3600 * 1000;
const iso = (msAgo) => new Date(Date.now() - msAgo).toISOString();
const pwd = () => ({ name: 'pwd', timestamp: iso(60 * 1000) });

/** A fake post-login `api` that records every call as [name, ...args]. */
function fakeApi({ canRedirect = true } = {}) {
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
    },
    authentication: {
      recordMethod: (...args) => {
        calls.push(['authentication.recordMethod', ...args]);
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
    request: { query: pick('query', {}), language: 'en' },
    user: { user_id: 'auth0|123' },
  };
}

async function execute(event, apiOptions) {
  const { api, calls } = fakeApi(apiOptions);
  await onExecutePostLogin(event, api);
  return calls;
}

async function resume(event, apiOptions) {
  const { api, calls } = fakeApi(apiOptions);
  await onContinuePostLogin(event, api);
  return calls;
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

test('exports exactly the two Auth0 handlers, both async', () => {
  const mod = require('./post-login.js');
  assert.deepEqual(Object.keys(mod).sort(), ['onContinuePostLogin', 'onExecutePostLogin']);
  assert.equal(mod.onExecutePostLogin.constructor.name, 'AsyncFunction');
  assert.equal(mod.onContinuePostLogin.constructor.name, 'AsyncFunction');
});
