// The embed end to end: www/examples/login.html (an ordinary login page that adds
// <smile-factor> after the password step), served by the Rust server (through the harness
// tools/serve.mjs) with its strict CSP header, in Chromium
// with a fake camera. What an integrator checks: the result arrives through the event,
// nothing violates the policy, and removing the element turns the camera off.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startServer } from '../../tools/serve.mjs';
import { cameraFile, checkBuilt, clickShadowStart, sleep, WWW } from './helpers.mjs';
import { launchBrowser } from './webdriver.mjs';

const LOGIN = '/examples/login.html';
const DURATION_S = 5; // data-duration in login.html
const T = { timeout: 120_000 };

/** Serves www/ (the Rust server sends its strict CSP), opens the login page with `camera`, runs `body`. */
async function withLogin(camera, body) {
  const srv = await startServer({ root: WWW });
  let browser;
  try {
    browser = await launchBrowser({ fakeCamera: await cameraFile(camera) });
    await browser.navigate(`${srv.origin}${LOGIN}`, 30_000);
    return await body({ srv, browser });
  } finally {
    if (browser) await browser.quit();
    await srv.close();
  }
}

/** Fills in the form and submits it like a user would. */
async function signIn(browser) {
  await browser.executeScript(() => {
    document.getElementById('username').value = 'ada';
    document.getElementById('password').value = 'correct horse';
  });
  await browser.clickSelector('#sign-in');
}

/** The result the page got from the smile-factor-result event. */
async function waitForResult(browser) {
  const raw = await browser.waitFor(() => document.documentElement.dataset.result ?? null, [],
    { timeoutMs: DURATION_S * 1000 + 30_000, what: 'the smile-factor-result event (data-result)' });
  return JSON.parse(raw);
}

async function cspComplaints(browser) {
  const log = await browser.getLog('browser');
  return log.filter((e) => /Content Security Policy|Refused to/i.test(e.message)).map((e) => e.message);
}

describe('embedding <smile-factor> in a login page (strict CSP)', { concurrency: false }, () => {
  checkBuilt();
  before(async () => {
    await Promise.all(['neutral', 'smile'].map(cameraFile));
  });

  test('the server really sends the strict policy with the page', T, async () => {
    const srv = await startServer({ root: WWW });
    try {
      const res = await fetch(`${srv.origin}${LOGIN}`);
      assert.equal(res.status, 200);
      const csp = res.headers.get('content-security-policy') ?? '';
      const directives = Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v.join(' ')]));
      assert.equal(directives['default-src'], "'self'", csp);
      assert.equal(directives['script-src'], "'self' 'wasm-unsafe-eval'", csp);
      assert.equal(directives['style-src'], "'self'", csp);
      assert.doesNotMatch(csp, /'unsafe-inline'|'unsafe-eval'|\*/, csp);
    } finally {
      await srv.close();
    }
  });

  test('neutral face: the page receives notsmiling=true through the event, no CSP violation', T, async (t) => {
    await withLogin('neutral', async ({ srv, browser }) => {
      await signIn(browser);
      await clickShadowStart(browser, 'smile-factor');
      const result = await waitForResult(browser);
      assert.equal(result.notsmiling, true, JSON.stringify(result));
      assert.equal(result.reason, null);
      assert.ok(result.framesAnalysed > 0, JSON.stringify(result));
      assert.ok(result.faceSeenRatio >= 0.8, JSON.stringify(result));
      assert.ok(result.maxSmileScore < 0.5, JSON.stringify(result));
      const shown = await browser.executeScript(() => document.getElementById('outcome').textContent);
      assert.equal(shown, 'Welcome, ada!');
      assert.deepEqual(await cspComplaints(browser), [], 'the console shows no CSP violation');
      // Without a return URL the element never navigates.
      assert.equal(srv.continues.length, 0, 'nothing reached /continue');
      assert.equal(new URL(await browser.getCurrentUrl()).pathname, LOGIN);
      t.diagnostic(`neutral: ${JSON.stringify(result)}`);
    });
  });

  test('smiling face: reason=smiled', T, async (t) => {
    await withLogin('smile', async ({ browser }) => {
      await signIn(browser);
      await clickShadowStart(browser, 'smile-factor');
      const result = await waitForResult(browser);
      assert.equal(result.notsmiling, false, JSON.stringify(result));
      assert.equal(result.reason, 'smiled');
      assert.ok(result.maxSmileScore >= 0.5, JSON.stringify(result));
      const shown = await browser.executeScript(() => document.getElementById('outcome').textContent);
      assert.equal(shown, 'You smiled. Access denied.');
      assert.deepEqual(await cspComplaints(browser), []);
      t.diagnostic(`smile: ${JSON.stringify(result)}`);
    });
  });

  test('removing the element mid-challenge stops the camera', T, async () => {
    await withLogin('neutral', async ({ browser }) => {
      await signIn(browser);
      await clickShadowStart(browser, 'smile-factor');
      await browser.waitFor(() => document.querySelector('smile-factor')?.dataset.phase === 'challenge' || null, [],
        { timeoutMs: 20_000, what: 'the challenge to run' });
      const before = await browser.executeScript(() => {
        const video = document.querySelector('smile-factor').shadowRoot.getElementById('selfview');
        window.testTracks = video.srcObject.getTracks();
        return window.testTracks.map((t) => t.readyState);
      });
      assert.ok(before.length > 0 && before.every((s) => s === 'live'), `camera running: ${before}`);
      await browser.executeScript(() => document.querySelector('smile-factor').remove());
      const states = await browser.executeScript(() => window.testTracks.map((t) => t.readyState));
      assert.deepEqual(states, states.map(() => 'ended'), 'every camera track ended on removal');
      // Nothing keeps running: no result arrives after the countdown would have ended.
      await sleep(DURATION_S * 1000 + 1_000);
      assert.equal(await browser.executeScript(() => document.documentElement.dataset.result ?? null), null);
    });
  });

  test('a return-url off the allowlist fails closed: result reason=error, no navigation', T, async () => {
    await withLogin('neutral', async ({ srv, browser }) => {
      const detail = await browser.executeAsyncScript((done) => {
        const el = document.createElement('smile-factor');
        el.setAttribute('return-url', 'https://evil.example');
        el.setAttribute('state', 'abc');
        el.addEventListener('smile-factor-result', (e) => done(e.detail));
        document.body.append(el);
      }, [], 30_000);
      assert.equal(detail.notsmiling, false);
      assert.equal(detail.reason, 'error');
      assert.match(detail.message, /allowlist|config/i, detail.message);
      assert.equal(srv.continues.length, 0);
      assert.equal(new URL(await browser.getCurrentUrl()).pathname, LOGIN);
    });
  });
});
