// End-to-end in three engines: the real page (www/) in Chromium, Firefox ESR and WebKitGTK
// (MiniBrowser), each through its own WebDriver (tests/e2e/webdriver.mjs), all fed by the
// same canvas camera (tests/e2e/canvas-camera.js, injected by the harness: neither
// Firefox's nor WebKit's fake camera can play a file). An engine whose binaries are
// missing is skipped with a message naming them; `./run setup` installs all three.
//
//   cd tests/e2e && node --test engines.test.mjs          (SMILE_E2E_ENGINES=firefox,webkit to pick)

import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { startServer } from '../../tools/serve.mjs';
import { DURATION_S, SCREENSHOTS, WWW, cameraFile, checkBuilt, clickStart, runChallenge, sleep } from './helpers.mjs';
import { ENGINES, engineMissing, launchBrowser } from './webdriver.mjs';

const T = { timeout: 120_000 };
const PICKED = process.env.SMILE_E2E_ENGINES ? process.env.SMILE_E2E_ENGINES.split(',') : ENGINES;
const q = (params) => '?' + new URLSearchParams(params).toString().replace(/\+/g, '%20');

/**
 * Serves www/ through the harness (canvas camera injected unless `fakeCamera: false`),
 * opens `engine`, and hands `body` the pieces. `open(query)` loads the page, waits for a
 * settled phase and points the canvas camera at `camera`. Always cleans up.
 */
async function withEngine(engine, { camera = 'neutral', fakeCamera = true, grantCamera = true } = {}, body) {
  const srv = await startServer({
    root: WWW,
    config: (origin) => ({ returnUrl: origin, duration: DURATION_S }),
    fakeCamera,
  });
  let browser;
  try {
    // Chromium's own fake camera (a y4m of the same scene) stands behind the canvas one,
    // for the denied-camera case; Firefox and WebKit bring their own fake devices.
    const file = engine === 'chromium' ? await cameraFile(camera) : undefined;
    browser = await launchBrowser({ engine, grantCamera, fakeCamera: file });
    const open = async (query) => {
      await browser.navigate(`${srv.origin}/${query}`, 30_000);
      const p = await browser.waitFor(() => {
        const ph = document.documentElement.dataset.phase;
        return ph && ph !== 'loading' ? ph : null;
      }, [], { timeoutMs: 30_000, what: 'the page to finish loading (dataset.phase set and != loading)' });
      if (fakeCamera) {
        await browser.executeScript((name) => window.__smileFakeCamera.show(name), [camera]);
      }
      return p;
    };
    return await body({ srv, browser, origin: srv.origin, open });
  } finally {
    if (browser) await browser.quit();
    await srv.close();
  }
}

/** `dataset`: the page's data-* record, shown on failure (frames analysed, fps, frozen frames). */
function assertContinue(url, origin, expected, dataset) {
  assert.equal(url.origin, origin, 'redirected to the configured return URL');
  assert.equal(url.pathname, '/continue');
  const why = dataset ? `page record: ${JSON.stringify(dataset)}` : undefined;
  assert.deepEqual(Object.fromEntries(url.searchParams), expected, why);
}

async function errorThenReturn(browser, srv, origin, what) {
  await browser.waitFor(() => document.documentElement.dataset.phase === 'error', [], { timeoutMs: 20_000, what });
  const message = await browser.executeScript(() => document.getElementById('error-message').textContent.trim());
  assert.ok(message.length > 0, '#error-message explains what happened');
  await browser.clickSelector('#return');
  return { message, url: new URL(await srv.waitForContinue(10_000), origin) };
}

for (const engine of ENGINES) {
  const missing = engineMissing(engine);
  const skip = !PICKED.includes(engine) ? `${engine} not in SMILE_E2E_ENGINES` : missing ? `skipped: ${missing}` : false;

  describe(`the page in ${engine}`, { concurrency: false, skip }, () => {
    checkBuilt();

    test(`${engine}: the canvas camera is the page's camera, through the same-origin script (CSP allows it)`, T, async (t) => {
      await withEngine(engine, {}, async ({ browser, open, srv }) => {
        assert.equal(await open(q({ state: 'probe' })), 'start');
        const probe = await browser.executeScript(() => ({
          injected: typeof window.__smileFakeCamera?.show === 'function',
          first: document.head.firstElementChild?.getAttribute('src'),
          ua: navigator.userAgent,
        }));
        assert.ok(probe.injected, 'window.__smileFakeCamera exists before the page asks for the camera');
        assert.equal(probe.first, '/__e2e/canvas-camera.js', 'the script is first in <head>');
        assert.ok(srv.requests.some((r) => r.url === '/__e2e/canvas-camera.js' && r.status === 200), 'the browser fetched it');
        t.diagnostic(`${engine}: ${probe.ua}`);
      });
    });

    test(`${engine}: neutral face with a tricky state: notsmiling=true, state byte for byte`, T, async (t) => {
      const state = 'a+b/c=d&e%f#g ü 雪 😀';
      await withEngine(engine, { camera: 'neutral' }, async (ctx) => {
        const r = await runChallenge(ctx, `?state=${encodeURIComponent(state)}`);
        assert.ok(Buffer.from(r.url.searchParams.get('state'), 'utf8').equals(Buffer.from(state, 'utf8')), `state came back as ${r.url.searchParams.get('state')}`);
        assertContinue(r.url, ctx.origin, { state, notsmiling: 'true' }, r.dataset);
        assert.ok(r.dataset, 'the result screen was seen before the redirect');
        t.diagnostic(`${engine} neutral: frame transfer ${r.dataset.frameTransfer}, ${r.dataset.framesAnalysed} frames analysed, ${r.dataset.analysisFps} fps, frozen ${r.dataset.frozenFrames}`);
      });
    });

    test(`${engine}: a smile fails at once with reason=smiled`, T, async (t) => {
      await withEngine(engine, { camera: 'smile' }, async (ctx) => {
        const r = await runChallenge(ctx, q({ state: `smile-${engine}` }));
        assertContinue(r.url, ctx.origin, { state: `smile-${engine}`, notsmiling: 'false', reason: 'smiled' }, r.dataset);
        assert.ok(r.sinceChallengeMs < DURATION_S * 1000, `the smile ended it before the countdown (${r.sinceChallengeMs} ms)`);
        t.diagnostic(`${engine} smile: ${r.sinceChallengeMs} ms from the challenge screen to /continue`);
      });
    });

    test(`${engine}: the canvas camera's auto mode smiles once the countdown shows: reason=smiled`, { ...T, skip: engine !== 'chromium' ? 'the auto mode is the test camera\'s own feature: once is enough' : false }, async () => {
      await withEngine(engine, { camera: 'neutral' }, async (ctx) => {
        await ctx.open(q({ state: 'auto' }));
        // Neutral on the start screen; a smile as soon as #countdown is shown.
        await ctx.browser.executeScript(() => window.__smileFakeCamera.auto({ selector: '#countdown', then: 'smile', otherwise: 'neutral' }));
        const r = await runChallenge({ ...ctx, open: async () => 'start' }, '');
        assertContinue(r.url, ctx.origin, { state: 'auto', notsmiling: 'false', reason: 'smiled' });
      });
    });

    test(`${engine}: an empty scene gives reason=no_face`, T, async () => {
      await withEngine(engine, { camera: 'empty' }, async (ctx) => {
        const r = await runChallenge(ctx, q({ state: `empty-${engine}` }));
        assertContinue(r.url, ctx.origin, { state: `empty-${engine}`, notsmiling: 'false', reason: 'no_face' }, r.dataset);
      });
    });

    test(`${engine}: a missing state shows the error page and never redirects`, T, async () => {
      await withEngine(engine, {}, async ({ srv, browser, open }) => {
        assert.equal(await open(''), 'error');
        const msg = await browser.executeScript(() => document.getElementById('error-message')?.textContent.trim() ?? '');
        assert.ok(msg.length > 0, '#error-message explains the problem');
        await sleep(2_000);
        assert.equal(srv.continues.length, 0, 'nothing reached /continue');
      });
    });

    test(`${engine}: track.stop() mid-challenge gives the camera-lost screen, then reason=camera_lost`, T, async (t) => {
      await withEngine(engine, { camera: 'neutral' }, async ({ srv, browser, open, origin }) => {
        assert.equal(await open(q({ state: `lost-${engine}` })), 'start');
        await clickStart(browser, { click: true });
        await browser.waitFor(() => document.documentElement.dataset.phase === 'challenge', [], { timeoutMs: 30_000, what: 'the challenge screen' });
        await sleep(1_000);
        const stopTracks = () => browser.executeScript(() => {
          const tracks = document.getElementById('selfview').srcObject?.getVideoTracks() ?? [];
          tracks.forEach((tr) => tr.stop());
          return tracks.length;
        });
        // Once in a full CI run (2026-12-02) WebKitWebDriver answered this call with a bare
        // 500 "unknown error" (12 runs of this test alone passed, 6 with both cores busy).
        // Stopping twice is harmless and the count is the same, so one retry is honest.
        const stopped = await stopTracks().catch((e) => {
          if (engine !== 'webkit' || e.error !== 'unknown error') throw e;
          t.diagnostic(`${engine}: retried the stop after: ${e.message}`);
          return stopTracks();
        });
        assert.equal(stopped, 1, 'the self-view had one video track');
        const r = await errorThenReturn(browser, srv, origin, 'the error screen after track.stop()');
        assertContinue(r.url, origin, { state: `lost-${engine}`, notsmiling: 'false', reason: 'camera_lost' });
        t.diagnostic(`${engine} camera lost: ${r.message}`);
      });
    });

    test(`${engine}: a denied camera gives reason=camera_denied`, { ...T, skip: engine === 'webkit' ? 'MiniBrowser grants its mock camera under automation and has no switch to deny it' : false }, async (t) => {
      // The engine's own camera and permission (no canvas camera): the prompt is denied.
      await withEngine(engine, { fakeCamera: false, grantCamera: false }, async ({ srv, browser, open, origin }) => {
        assert.equal(await open(q({ state: `denied-${engine}` })), 'start');
        if (engine === 'chromium') await browser.setPermission('camera', 'denied').catch(() => {});
        await clickStart(browser, { click: true });
        const r = await errorThenReturn(browser, srv, origin, 'phase=error after the camera was denied');
        assertContinue(r.url, origin, { state: `denied-${engine}`, notsmiling: 'false', reason: 'camera_denied' });
        t.diagnostic(`${engine} denied: ${r.message}`);
      });
    });

    test(`${engine}: camera frames keep their colours on the way to the worker (VideoFrame drawn into a canvas, not copyTo)`, T, async (t) => {
      // WebKit's VideoFrame.copyTo(..., {format: 'RGBA'}) hands back BGRA bytes. The page
      // never calls copyTo: the worker draws each transferred VideoFrame into an
      // OffscreenCanvas and reads RGBA with getImageData (src/web/worker.rs, Readback).
      // Here the same steps run in the page on the self-view of a red-dominant camera.
      await withEngine(engine, { camera: 'neutral' }, async ({ browser, open }) => {
        assert.equal(await open(q({ state: `colour-${engine}` })), 'start');
        await browser.executeScript(() => window.__smileFakeCamera.fill([220, 90, 30]));
        await clickStart(browser, { click: true });
        await browser.waitFor(() => document.getElementById('selfview')?.readyState >= 2, [], { timeoutMs: 30_000, what: 'the self-view to play' });
        await sleep(500);
        const got = await browser.executeAsyncScript(async (done) => {
          try {
            const video = document.getElementById('selfview');
            const frame = new VideoFrame(video);
            const w = 32, h = 24;
            const canvas = new OffscreenCanvas(w, h);
            const ctx = canvas.getContext('2d', { willReadFrequently: true });
            ctx.drawImage(frame, 0, 0, w, h);
            const px = ctx.getImageData(0, 0, w, h).data;
            const at = ((h / 2) * w + w / 2) * 4;
            const viaCanvas = [px[at], px[at + 1], px[at + 2]];
            let viaCopyTo = null;
            try {
              const rect = { x: 0, y: 0, width: frame.displayWidth, height: frame.displayHeight };
              const buf = new Uint8Array(rect.width * rect.height * 4);
              await frame.copyTo(buf, { rect, format: 'RGBA' });
              const c = ((rect.height >> 1) * rect.width + (rect.width >> 1)) * 4;
              viaCopyTo = [buf[c], buf[c + 1], buf[c + 2]];
            } catch (e) {
              viaCopyTo = String(e);
            }
            frame.close();
            done({ viaCanvas, viaCopyTo, transfer: document.documentElement.dataset.frameTransfer });
          } catch (e) {
            done({ error: String(e) });
          }
        });
        assert.ok(!got.error, got.error);
        const [r, g, b] = got.viaCanvas;
        assert.ok(Math.abs(r - 220) <= 12 && Math.abs(g - 90) <= 12 && Math.abs(b - 30) <= 12,
          `a canvas read of the frame is RGBA in ${engine}: got [${got.viaCanvas}] for [220,90,30]`);
        t.diagnostic(`${engine}: frame transfer ${got.transfer}; canvas read [${got.viaCanvas}]; copyTo RGBA gave [${got.viaCopyTo}]`);
        await browser.screenshot(path.join(SCREENSHOTS, `${engine}-colour.png`)).catch(() => {});
      });
    });
  });
}
