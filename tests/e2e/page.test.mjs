// End-to-end: the real page (www/) in headless Chromium with a fake camera, redirecting
// to this test's own server. Needs `./run build` first (www/pkg/, www/models/).
//
//   cd tests/e2e && npm ci && node --test

import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  DURATION_S,
  OUT,
  browserRequestUrls,
  cameraFile,
  checkBuilt,
  clickStart,
  runChallenge,
  sleep,
  withPage,
} from './helpers.mjs';

const T = { timeout: 90_000 };
const q = (params) => '?' + new URLSearchParams(params).toString().replace(/\+/g, '%20');

/** Asserts the exact set of query parameters /continue received. */
function assertContinue(url, origin, expected) {
  assert.equal(url.origin, origin, 'redirected to the configured return URL');
  assert.equal(url.pathname, '/continue');
  assert.deepEqual(Object.fromEntries(url.searchParams), expected);
  assert.equal([...url.searchParams.keys()].length, Object.keys(expected).length, 'no repeated parameters');
}

/** Every URL the browser requested is the page's own origin, data: or blob:. */
function assertSameOrigin(urls, origin) {
  const foreign = urls.filter((u) => !(u.startsWith(origin + '/') || u === origin || u.startsWith('data:') || u.startsWith('blob:')));
  assert.deepEqual(foreign, [], `requests left for other origins: ${foreign.join(', ')}`);
}

// Timings and the page's reported analysis speed, written to target/e2e/summary.json.
const summary = {};

describe('smile-factor page', { concurrency: false }, () => {
  checkBuilt(); // a missing build fails the suite once, with the message saying to run ./run build
  before(async () => {
    await Promise.all(['neutral', 'smile', 'empty'].map(cameraFile));
  });
  after(async () => {
    await mkdir(OUT, { recursive: true });
    await writeFile(path.join(OUT, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  });

  test('1. neutral face: notsmiling=true after the whole countdown (+ screenshots, fps)', T, async (t) => {
    await withPage({ camera: 'neutral' }, async (ctx) => {
      const r = await runChallenge(ctx, q({ state: 'neutral-1' }), { screenshots: true });
      assertContinue(r.url, ctx.origin, { state: 'neutral-1', notsmiling: 'true' });
      assert.ok(r.sinceChallengeMs >= DURATION_S * 1000, `took the whole ${DURATION_S} s countdown (took ${r.sinceChallengeMs} ms from the challenge screen)`);
      assert.ok(r.dataset, 'the result screen was seen before the redirect');
      assert.equal(r.dataset.notsmiling, 'true');
      const fps = r.dataset.analysisFps;
      t.diagnostic(`neutral: ${r.elapsedMs} ms from Start to /continue; analysed ${r.dataset.framesAnalysed} frames, ${fps} fps`);
      summary.neutral = { elapsedMs: r.elapsedMs, sinceChallengeMs: r.sinceChallengeMs, analysisFps: fps, framesAnalysed: r.dataset.framesAnalysed };
      assert.ok(Number(fps) > 0, `dataset.analysisFps is a positive number (got ${fps})`);
      assert.equal(r.dataset.frameTransfer, 'video-frame', 'camera frames reach the worker as VideoFrames (no readback on the page)');
    });
  });

  test('2. smiling face: notsmiling=false&reason=smiled before the countdown ends', T, async (t) => {
    await withPage({ camera: 'smile' }, async (ctx) => {
      const r = await runChallenge(ctx, q({ state: 'smile-2' }));
      assertContinue(r.url, ctx.origin, { state: 'smile-2', notsmiling: 'false', reason: 'smiled' });
      summary.smile = { elapsedMs: r.elapsedMs, sinceChallengeMs: r.sinceChallengeMs, analysisFps: r.dataset?.analysisFps };
      t.diagnostic(`smile: ${r.elapsedMs} ms from Start (${r.sinceChallengeMs} ms from the challenge screen) to /continue; fps ${r.dataset?.analysisFps}`);
      // The countdown starts with the challenge screen (after the camera opened), so time it from there.
      assert.ok(r.sinceChallengeMs < DURATION_S * 1000,
        `arrived before the ${DURATION_S} s countdown ended (${r.sinceChallengeMs} ms after the challenge screen, ${r.elapsedMs} ms after Start)`);
    });
  });

  test('2b. without WebCodecs the page reads frames back itself, and still catches the smile', T, async (t) => {
    // As in a browser without VideoFrame (the worker keeps its own; the page decides).
    await withPage({ camera: 'smile', initScript: 'delete globalThis.VideoFrame;' }, async (ctx) => {
      const r = await runChallenge(ctx, q({ state: 'smile-2b' }));
      assertContinue(r.url, ctx.origin, { state: 'smile-2b', notsmiling: 'false', reason: 'smiled' });
      assert.equal(r.dataset?.frameTransfer, 'canvas', 'frames went through the canvas readback');
      t.diagnostic(`smile without WebCodecs: ${r.sinceChallengeMs} ms from the challenge screen to /continue; fps ${r.dataset?.analysisFps}`);
    });
  });

  test('3. empty scene: notsmiling=false&reason=no_face', T, async (t) => {
    await withPage({ camera: 'empty' }, async (ctx) => {
      const r = await runChallenge(ctx, q({ state: 'empty-3' }));
      assertContinue(r.url, ctx.origin, { state: 'empty-3', notsmiling: 'false', reason: 'no_face' });
      summary.empty = { elapsedMs: r.elapsedMs, analysisFps: r.dataset?.analysisFps };
      t.diagnostic(`empty: ${r.elapsedMs} ms from Start to /continue`);
    });
  });

  test('4. denied camera: error message, then #return gives reason=camera_denied', T, async (t) => {
    // Without --use-fake-ui-for-media-stream and with --deny-permission-prompts, headless
    // Chromium rejects getUserMedia with NotAllowedError; the permission is also set to denied.
    await withPage({ camera: 'neutral', grantCamera: false }, async ({ srv, browser, open, origin }) => {
      const first = await open(q({ state: 'denied-4' }));
      assert.equal(first, 'start');
      await browser.setPermission('camera', 'denied').catch((e) => t.diagnostic(`set permission: ${e.message}`));
      await clickStart(browser, { click: true });
      await browser.waitFor(() => document.documentElement.dataset.phase === 'error', [], {
        timeoutMs: 20_000,
        what: 'phase=error after the camera was denied',
      });
      const msg = await browser.executeScript(() => document.getElementById('error-message').textContent.trim());
      assert.ok(msg.length > 0, '#error-message is not empty');
      t.diagnostic(`error message: ${msg}`);
      await browser.clickSelector('#return');
      const raw = await srv.waitForContinue(10_000);
      assertContinue(new URL(raw, origin), origin, { state: 'denied-4', notsmiling: 'false', reason: 'camera_denied' });
    });
  });

  test('5. missing state: error page and nothing reaches /continue', T, async (t) => {
    await withPage({ camera: 'neutral' }, async ({ srv, browser, open }) => {
      const first = await open('');
      assert.equal(first, 'error');
      const msg = await browser.executeScript(() => document.getElementById('error-message')?.textContent.trim() ?? '');
      assert.ok(msg.length > 0, '#error-message explains the problem');
      t.diagnostic(`error message: ${msg}`);
      // Even pressing every visible button must not send anything.
      for (const id of ['#return', '#retry', '#start']) {
        const shown = await browser.executeScript((sel) => {
          const el = document.querySelector(sel);
          return !!el && el.offsetParent !== null && !el.disabled;
        }, [id]);
        if (shown) await browser.clickSelector(id).catch(() => {});
      }
      await sleep(3_000);
      assert.equal(srv.continues.length, 0, `nothing reaches /continue (got ${srv.continues.join(', ')})`);
    });
  });

  test('6. a tricky state round-trips exactly', T, async () => {
    const state = 'a+b/c=d&e%f#g ü 雪 😀';
    await withPage({ camera: 'neutral' }, async (ctx) => {
      const r = await runChallenge(ctx, `?state=${encodeURIComponent(state)}`);
      const got = r.url.searchParams.get('state');
      assert.ok(Buffer.from(got, 'utf8').equals(Buffer.from(state, 'utf8')), `state came back as ${JSON.stringify(got)}`);
      assertContinue(r.url, ctx.origin, { state, notsmiling: 'true' });
    });
  });

  test('7. return-style query parameters are ignored', T, async () => {
    const evil = 'https://evil.example/';
    await withPage({ camera: 'neutral' }, async (ctx) => {
      const r = await runChallenge(ctx, q({ state: 'ret-7', return: evil, returnUrl: evil, redirect_uri: evil, return_to: evil }));
      assertContinue(r.url, ctx.origin, { state: 'ret-7', notsmiling: 'true' });
      const now = await ctx.browser.getCurrentUrl();
      assert.equal(new URL(now).origin, ctx.origin, `the browser ended on ${now}`);
      const urls = await browserRequestUrls(ctx.browser);
      const hosts = urls.filter((u) => /^https?:/.test(u)).map((u) => new URL(u).hostname);
      assert.ok(!hosts.includes('evil.example'), 'the browser never asked evil.example');
      assertSameOrigin(urls, ctx.origin);
    });
  });

  test('8. no request leaves for another origin during a whole run', T, async (t) => {
    await withPage({ camera: 'neutral' }, async (ctx) => {
      const r = await runChallenge(ctx, q({ state: 'origin-8' }));
      assertContinue(r.url, ctx.origin, { state: 'origin-8', notsmiling: 'true' });
      await sleep(500); // let the /continue page finish loading
      const urls = await browserRequestUrls(ctx.browser);
      assert.ok(urls.length > 0, 'the performance log recorded requests');
      assert.ok(urls.some((u) => u.startsWith(ctx.origin + '/continue')), 'the log covers the redirect');
      assertSameOrigin(urls, ctx.origin);
      // The server saw only plain GETs of its own paths (absolute-form URLs would mean proxying).
      for (const req of ctx.srv.requests) {
        assert.ok(req.url.startsWith('/'), `server request ${req.method} ${req.url}`);
        assert.ok(req.method === 'GET' || req.method === 'HEAD', `server request ${req.method} ${req.url}`);
      }
      const paths = [...new Set(ctx.srv.requests.map((x) => x.url.split('?')[0]))];
      t.diagnostic(`browser requested ${urls.length} URLs; server paths: ${paths.join(' ')}`);
    });
  });

  test('9. Start works while the models still load: the countdown waits for them', T, async () => {
    let release;
    const released = new Promise((resolve) => { release = resolve; });
    const hold = (pathname) => (pathname.includes('/models/') ? released : undefined);
    try {
      await withPage({ camera: 'neutral', hold }, async ({ srv, browser, open, origin }) => {
        assert.equal(await open(q({ state: 'early-9' })), 'start', 'Start is offered before the models arrive');
        for (let i = 0; !srv.requests.some((r) => r.url.includes('/models/')); i++) {
          assert.ok(i < 200, 'the worker asked for a model');
          await sleep(50);
        }
        await browser.clickSelector('#start');
        await sleep(1_500);
        const held = await browser.executeScript(() => document.documentElement.dataset.phase);
        assert.equal(held, 'loading', 'no countdown while the models are still on their way');
        const releasedAt = Date.now();
        release();
        const raw = await srv.waitForContinue(DURATION_S * 1000 + 30_000);
        assertContinue(new URL(raw, origin), origin, { state: 'early-9', notsmiling: 'true' });
        const took = srv.requests.find((r) => r.url === raw).time - releasedAt;
        assert.ok(took >= DURATION_S * 1000, `the whole countdown ran after the models arrived (${took} ms)`);
      });
    } finally {
      release();
    }
  });

  test('10. a model that fails to load (before the config arrived): error screen, #return gives reason=error', T, async (t) => {
    // The worker starts before config.json is read: hold the config until the model
    // request has failed, so the failure must wait for the config to offer "Return".
    let modelFailed;
    const failed = new Promise((resolve) => { modelFailed = resolve; });
    const hold = (pathname) => {
      if (pathname.includes('/models/')) {
        modelFailed();
        return Promise.resolve(404);
      }
      if (pathname === '/config.json') return failed.then(() => sleep(300));
      return undefined;
    };
    await withPage({ camera: 'neutral', hold }, async ({ srv, browser, open, origin }) => {
      assert.equal(await open(q({ state: 'models-10' })), 'error');
      const [msg, detail, retry] = await browser.executeScript(() => [
        document.getElementById('error-message').textContent.trim(),
        document.getElementById('error-detail').textContent,
        document.getElementById('retry').offsetParent !== null,
      ]);
      t.diagnostic(`error message: ${msg} (${detail})`);
      assert.match(detail, /models\/.*404/, 'the detail names the model and the HTTP status');
      assert.equal(retry, false, 'no "Try again": reloading the same models would fail the same way');
      assert.equal(await browser.executeScript(() => document.querySelectorAll('#start:not([disabled])').length), 0);
      await browser.clickSelector('#return');
      const raw = await srv.waitForContinue(10_000);
      assertContinue(new URL(raw, origin), origin, { state: 'models-10', notsmiling: 'false', reason: 'error' });
    });
  });
});
