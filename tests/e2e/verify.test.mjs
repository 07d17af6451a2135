// End-to-end: the page's verify mode against the real verifier server (server/, demo
// mode) in headless Chromium with a fake camera, and the signed flow again in Firefox ESR
// (through the harness, which injects the canvas camera; skipped only when Firefox or
// geckodriver is missing). The server judges the crops itself and signs the verdict; its
// /continue validates the token as Auth0 would and shows each check.
// Needs `./run build` and `cargo build -p smile-factor-server` (./run test does both).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cameraFile, checkBuilt, clickStart, withPage, runChallenge } from './helpers.mjs';
import { startServer } from '../../tools/serve.mjs';
import { WWW } from './helpers.mjs';
import { engineMissing, launchBrowser } from './webdriver.mjs';
import { startVerifier } from './verifier.mjs';

const T = { timeout: 120_000 };
const MAX_CROP_BYTES = 16 * 1024;

/**
 * Records every body the page sends with fetch (method, URL, type, size, first bytes) in
 * sessionStorage, which outlives the page's navigation to /continue on the same origin.
 * DevTools' network log does not carry Blob bodies.
 */
const RECORD_UPLOADS = `(() => {
  const KEY = 'e2e-sent';
  const add = (r) => sessionStorage.setItem(KEY, JSON.stringify([...JSON.parse(sessionStorage.getItem(KEY) || '[]'), r]));
  const fetch0 = window.fetch;
  window.fetch = function (input, init = {}) {
    const url = String(input instanceof Request ? input.url : input);
    const method = (init.method || 'GET').toUpperCase();
    const headers = new Headers(init.headers || {});
    const body = init.body;
    const rec = { method, url, type: headers.get('content-type') || '', bytes: 0, head: [] };
    if (body instanceof Blob) {
      rec.bytes = body.size;
      body.slice(0, 3).arrayBuffer().then((b) => add({ ...rec, head: [...new Uint8Array(b)] }));
    } else {
      if (typeof body === 'string') rec.bytes = new TextEncoder().encode(body).length;
      add(rec);
    }
    return fetch0.apply(this, arguments);
  };
})();`;

/**
 * One signed login: a fresh demo link from the server, Start, then the page's POST to
 * /continue, whose result page the server renders. `initScript` runs before the page's.
 */
async function signedLogin({ camera, initScript }) {
  const verifier = await startVerifier();
  let browser;
  try {
    browser = await launchBrowser({ fakeCamera: await cameraFile(camera) });
    for (const source of [RECORD_UPLOADS, initScript].filter(Boolean)) {
      await browser.cdp('Page.addScriptToEvaluateOnNewDocument', { source });
    }
    await browser.navigate('about:blank');
    await browser.getLog('performance');
    // /demo redirects to the page with a freshly minted state and ctx token.
    await browser.navigate(`${verifier.origin}/demo`, 30_000);
    const phase = await browser.waitFor(() => {
      const p = document.documentElement.dataset.phase;
      return p && p !== 'loading' ? p : null;
    }, [], { timeoutMs: 30_000, what: 'the page to load' });
    assert.equal(phase, 'start', 'the start screen shows');
    const start = await browser.executeScript(() => ({
      verify: document.documentElement.dataset.verify,
      privacy: document.getElementById('privacy')?.textContent ?? '',
      url: location.href,
    }));
    await clickStart(browser, { click: true });
    // The page posts its form to /continue; the server answers with its checks.
    const result = await browser.waitFor(() => {
      const s = document.getElementById('summary');
      if (!s || location.pathname !== '/continue') return null;
      const checks = [...document.querySelectorAll('#checks li')].map((li) => li.textContent);
      return { ...s.dataset, summary: s.textContent, checks, url: location.href };
    }, [], { timeoutMs: 60_000, what: 'the POST to /continue and its checks' });
    const fetched = await browser.executeScript(() => JSON.parse(sessionStorage.getItem('e2e-sent') || '[]'));
    // Every request the browser made (the form's POST to /continue included).
    const requests = (await browser.performanceEvents())
      .filter((e) => e.method === 'Network.requestWillBeSent')
      .map(({ params: { request } }) => ({ method: request.method, url: request.url }));
    return { start, result, requests, fetched, log: verifier.output() };
  } finally {
    if (browser) await browser.quit();
    await verifier.close();
  }
}

/**
 * The signed login in Firefox. It has no DevTools log nor init scripts through WebDriver,
 * so the harness serves the page (the Rust server behind it, in demo mode) with the
 * canvas camera and `initScripts` injected, and the demo link is opened on the harness's
 * origin. The page posts its token to the return URL, the Rust server's own /continue.
 * `requests`: what the Rust server's access log lists (method and path, every request).
 */
async function signedLoginFirefox({ camera, initScript }) {
  const srv = await startServer({
    root: WWW,
    fakeCamera: true,
    initScripts: [RECORD_UPLOADS, initScript].filter(Boolean),
    upstreamOptions: { durationMs: 5_000, frameIntervalMs: 1_000 },
  });
  let browser;
  try {
    browser = await launchBrowser({ engine: 'firefox' });
    const demo = await fetch(`${srv.upstream}/demo`, { redirect: 'manual' });
    const link = new URL(demo.headers.get('location'));
    assert.equal(link.origin, srv.upstream, 'the demo link points at the verifier');
    await browser.navigate(`${srv.origin}${link.pathname}${link.search}`, 30_000);
    const phase = await browser.waitFor(() => {
      const p = document.documentElement.dataset.phase;
      return p && p !== 'loading' ? p : null;
    }, [], { timeoutMs: 30_000, what: 'the page to load' });
    assert.equal(phase, 'start', 'the start screen shows');
    await browser.executeScript((name) => window.__smileFakeCamera.show(name), [camera]);
    const start = await browser.executeScript(() => ({
      verify: document.documentElement.dataset.verify,
      privacy: document.getElementById('privacy')?.textContent ?? '',
      url: location.href,
    }));
    await clickStart(browser, { click: true });
    const result = await browser.waitFor(() => {
      const s = document.getElementById('summary');
      if (!s || location.pathname !== '/continue') return null;
      const checks = [...document.querySelectorAll('#checks li')].map((li) => li.textContent);
      return { ...s.dataset, summary: s.textContent, checks, url: location.href };
    }, [], { timeoutMs: 60_000, what: 'the POST to /continue and its checks' });
    // The recorder kept its list in the page origin's sessionStorage: read it there.
    await browser.navigate(`${srv.origin}/__e2e/init-0.js`);
    const fetched = await browser.executeScript(() => JSON.parse(sessionStorage.getItem('e2e-sent') || '[]'));
    const log = srv.output();
    const requests = log.replace(/\x1b\[[0-9;]*m/g, '').split('\n').flatMap((l) => {
      const m = /\brequest\b.*\bmethod=(\w+)\s+path=(\S+)/.exec(l);
      return m ? [{ method: m[1], url: srv.upstream + m[2] }] : [];
    });
    return { start, result, requests, fetched, log, origins: [srv.origin, srv.upstream] };
  } finally {
    if (browser) await browser.quit();
    await srv.close();
  }
}

/** What leaves the device in verify mode: the challenge, JPEG crops, finish, the token form. */
function assertUploads({ requests, fetched, origins }, origin) {
  const path = (u) => new URL(u, origin).pathname.replace(/\/challenges\/[^/]+\//, '/challenges/ID/');
  const sent = requests.filter((r) => r.method !== 'GET').map((r) => `${r.method} ${path(r.url)}`);
  const frames = fetched.filter((r) => path(r.url) === '/api/v1/challenges/ID/frames');
  assert.ok(frames.length >= 1, `crops were uploaded (${frames.length})`);
  for (const f of frames) {
    assert.equal(f.type, 'image/jpeg');
    assert.ok(f.bytes > 0 && f.bytes <= MAX_CROP_BYTES, `a crop of ${f.bytes} bytes (at most ${MAX_CROP_BYTES})`);
    assert.deepEqual(f.head, [0xff, 0xd8, 0xff], 'the body is a JPEG');
  }
  // The browser's own log agrees: nothing else with a body left, and only to this origin.
  assert.deepEqual([...new Set(sent)].sort(), ['POST /api/v1/challenges', 'POST /api/v1/challenges/ID/finish',
    'POST /api/v1/challenges/ID/frames', 'POST /continue'].filter((x) => frames.length || !x.endsWith('frames')).sort());
  assert.equal(sent.filter((x) => x === 'POST /api/v1/challenges').length, 1, 'one challenge');
  assert.equal(sent.filter((x) => x === 'POST /continue').length, 1, 'one POST to /continue');
  assert.ok(requests.every((r) => (origins ?? [origin]).some((o) => r.url.startsWith(o + '/')) || r.url.startsWith('data:') || r.url.startsWith('blob:') || r.url === 'about:blank'),
    'nothing leaves for another origin');
}

/** The server's log never carries a token or a crop's pixels (its printed demo link aside). */
function assertLogClean(log) {
  const lines = log.split('\n').filter((l) => !/^http:\/\/127\.0\.0\.1:\d+\/\?state=/.test(l));
  assert.ok(lines.some((l) => /POST/.test(l)), 'the log was captured (it lists requests)');
  assert.deepEqual(lines.filter((l) => /eyJ[\w-]{8,}/.test(l)), [], 'no JWT in the server log');
  assert.deepEqual(lines.filter((l) => /\/9j\/|smile_token|session_token=/.test(l)), [], 'no JPEG or token in the server log');
}

// Every analysis result from the worker reads as a straight face: the page's own verdict
// would pass. The crops it uploads still show the smile.
const PATCH_NO_SMILE = `(() => {
  const add = Worker.prototype.addEventListener;
  Worker.prototype.addEventListener = function (type, fn, opts) {
    if (type !== 'message') return add.call(this, type, fn, opts);
    return add.call(this, type, (e) => {
      const d = e.data;
      if (d && d.type === 'result' && typeof d.smile === 'number') {
        fn.call(this, new MessageEvent('message', { data: { ...d, smile: 0 } }));
      } else fn.call(this, e);
    }, opts);
  };
})();`;

describe('verify mode: signed verdicts from the real verifier', { concurrency: false }, () => {
  checkBuilt();

  test('a neutral face: the server signs notsmiling=true and /continue validates every check', T, async (t) => {
    const r = await signedLogin({ camera: 'neutral' });
    assert.equal(r.start.verify, 'true', '<html data-verify> in verify mode');
    assert.match(r.start.privacy, /snapshot/i, 'the start screen says face snapshots go to this site');
    assert.equal(r.result.valid, 'true', `every Auth0-side check passed: ${r.result.checks.join(' | ')}`);
    assert.equal(r.result.notsmiling, 'true', r.result.summary);
    assert.equal(r.result.reason, '');
    assert.ok(Number(r.result.frames) >= 2, `the server judged its own crops (${r.result.frames})`);
    assert.ok(!new URL(r.result.url).searchParams.has('smile_token'), 'the token is not in the URL');
    assertUploads(r, new URL(r.result.url).origin);
    assertLogClean(r.log);
    t.diagnostic(`neutral: ${r.result.summary}`);
  });

  test('a smiling face: the server signs notsmiling=false, reason=smiled', T, async (t) => {
    const r = await signedLogin({ camera: 'smile' });
    assert.equal(r.result.valid, 'true', r.result.checks.join(' | '));
    assert.equal(r.result.notsmiling, 'false', r.result.summary);
    assert.equal(r.result.reason, 'smiled');
    assertUploads(r, new URL(r.result.url).origin);
    t.diagnostic(`smile: ${r.result.summary}`);
  });

  test('a page patched to see no smile still gets the server\'s verdict', T, async (t) => {
    const r = await signedLogin({ camera: 'smile', initScript: PATCH_NO_SMILE });
    assert.equal(r.result.valid, 'true', r.result.checks.join(' | '));
    assert.equal(r.result.notsmiling, 'false', `the server's verdict, not the page's: ${r.result.summary}`);
    assert.equal(r.result.reason, 'smiled');
    t.diagnostic(`patched page: ${r.result.summary}`);
  });

  test('on-device mode (no verify) uploads nothing', T, async () => {
    await withPage({ camera: 'neutral' }, async (ctx) => {
      const r = await runChallenge(ctx, '?state=on-device');
      assert.equal(r.url.searchParams.get('notsmiling'), 'true');
      const sent = ctx.srv.requests.filter((q) => q.method !== 'GET' && q.method !== 'HEAD');
      assert.deepEqual(sent, [], 'no request but GET reached the server');
      assert.ok(!ctx.srv.requests.some((q) => q.url.startsWith('/api/')), 'the verifier API was never called');
    });
  });
});

describe('verify mode in Firefox: the signed flow', { concurrency: false, skip: engineMissing('firefox') ? `skipped: ${engineMissing('firefox')}` : false }, () => {
  checkBuilt();

  test('firefox: a neutral face: the server signs notsmiling=true and /continue validates every check', T, async (t) => {
    const r = await signedLoginFirefox({ camera: 'neutral' });
    assert.equal(r.start.verify, 'true', '<html data-verify> in verify mode');
    assert.equal(r.result.valid, 'true', `every Auth0-side check passed: ${r.result.checks.join(' | ')}`);
    assert.equal(r.result.notsmiling, 'true', r.result.summary);
    assert.equal(r.result.reason, '');
    assert.ok(Number(r.result.frames) >= 2, `the server judged its own crops (${r.result.frames})`);
    assert.ok(!new URL(r.result.url).searchParams.has('smile_token'), 'the token is not in the URL');
    assertUploads(r, new URL(r.result.url).origin);
    assertLogClean(r.log);
    t.diagnostic(`firefox neutral: ${r.result.summary}`);
  });

  test('firefox: a smiling face: the server signs notsmiling=false, reason=smiled', T, async (t) => {
    const r = await signedLoginFirefox({ camera: 'smile' });
    assert.equal(r.result.valid, 'true', r.result.checks.join(' | '));
    assert.equal(r.result.notsmiling, 'false', r.result.summary);
    assert.equal(r.result.reason, 'smiled');
    assertUploads(r, new URL(r.result.url).origin);
    t.diagnostic(`firefox smile: ${r.result.summary}`);
  });

  test('firefox: a page patched to see no smile still gets the server\'s verdict', T, async (t) => {
    const r = await signedLoginFirefox({ camera: 'smile', initScript: PATCH_NO_SMILE });
    assert.equal(r.result.valid, 'true', r.result.checks.join(' | '));
    assert.equal(r.result.notsmiling, 'false', `the server's verdict, not the page's: ${r.result.summary}`);
    assert.equal(r.result.reason, 'smiled');
    t.diagnostic(`firefox patched page: ${r.result.summary}`);
  });
});
