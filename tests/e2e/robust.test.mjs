// End-to-end: the page in the field. A camera that stops mid-challenge (`track.stop()`,
// a device that disappears, a long mute) fails closed with reason=camera_lost unless the
// user presses Try again; frozen frames (a still picture played as a camera) count as
// no face. Headless Chromium with the y4m fake camera, as page.test.mjs.
//
//   cd tests/e2e && npm ci && node --test robust.test.mjs

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import {
  DURATION_S,
  OUT,
  cameraFile,
  checkBuilt,
  clickStart,
  runChallenge,
  sleep,
  withPage,
} from './helpers.mjs';
import { startVerifier } from './verifier.mjs';
import { launchBrowser } from './webdriver.mjs';

const T = { timeout: 120_000 };
const q = (params) => '?' + new URLSearchParams(params).toString();

/** Asserts the exact set of query parameters /continue received. */
function assertContinue(raw, origin, expected) {
  const url = new URL(raw, origin);
  assert.equal(url.origin, origin);
  assert.equal(url.pathname, '/continue');
  assert.deepEqual(Object.fromEntries(url.searchParams), expected);
}

/** Opens the page, presses Start, and waits until the countdown has run for `afterMs`. */
async function startChallenge({ browser, open }, state, afterMs = 1_500) {
  assert.equal(await open(q({ state })), 'start');
  await clickStart(browser, { click: true });
  await browser.waitFor(() => document.documentElement.dataset.phase === 'challenge', [], {
    timeoutMs: 30_000,
    what: 'the challenge screen',
  });
  await sleep(afterMs);
}

/** Runs `action` (a page function) on the self-view's video tracks, kept in window.__e2eTracks. */
function onTracks(browser, action) {
  return browser.executeScript(`
    const tracks = document.getElementById('selfview').srcObject?.getVideoTracks() ?? [];
    window.__e2eTracks = tracks;
    (${action})(tracks);
    return tracks.length;`);
}

/** Waits for the error screen and returns what it shows. */
async function errorScreen(browser, what) {
  await browser.waitFor(() => document.documentElement.dataset.phase === 'error', [], { timeoutMs: 5_000, what });
  return browser.executeScript(() => ({
    message: document.getElementById('error-message').textContent,
    retry: document.getElementById('retry').offsetParent !== null,
    back: document.getElementById('return').offsetParent !== null,
    focused: document.activeElement?.id,
    // The page stops the tracks itself (no camera light left on).
    tracks: (window.__e2eTracks ?? []).map((t) => t.readyState),
    frames: document.documentElement.dataset.framesAnalysed,
  }));
}

const LOST = /^The camera stopped during the check\./;

/**
 * A camera replaced by a canvas that shows one picture (the neutral scene, the y4m's first
 * frame) and is redrawn 30 times a second: new frames, identical pixels, as a virtual
 * camera playing a photo sends them. Runs before the page's scripts.
 */
function stillCamera(pngFile, { sway = false } = {}) {
  const dataUrl = `data:image/png;base64,${readFileSync(pngFile).toString('base64')}`;
  return `(() => {
    const img = new Image();
    img.src = ${JSON.stringify(dataUrl)};
    navigator.mediaDevices.getUserMedia = async () => {
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const g = canvas.getContext('2d');
      const stream = canvas.captureStream(30);
      const [track] = stream.getVideoTracks();
      // sway: the control, drawn 0-3 px lower at random each time, as a live camera's
      // noise never repeats. A regular pattern (every other frame) would alias with the
      // analysis budget's sampling into runs of identical analysed frames.
      const draw = () => g.drawImage(img, 0, ${sway ? 'Math.floor(Math.random() * 4)' : '0'});
      draw();
      const timer = setInterval(() => (track.readyState === 'ended' ? clearInterval(timer) : draw()), 33);
      return stream;
    };
  })();`;
}

describe('smile-factor page in the field', { concurrency: false }, () => {
  checkBuilt();
  before(async () => {
    await cameraFile('neutral');
  });

  test('1. track.stop() mid-challenge: camera-lost screen; Try again runs a whole new challenge that passes', T, async (t) => {
    await withPage({ camera: 'neutral' }, async (ctx) => {
      const { srv, browser, origin } = ctx;
      await startChallenge(ctx, 'stop-1');
      // track.stop() fires no `ended` event: the page must notice by polling readyState.
      assert.equal(await onTracks(browser, (tracks) => tracks.forEach((tr) => tr.stop())), 1);
      const shown = await errorScreen(browser, 'the error screen after track.stop()');
      t.diagnostic(JSON.stringify(shown));
      assert.match(shown.message, LOST);
      assert.ok(shown.retry && shown.back, 'Try again and Return to sign-in are offered');
      assert.equal(shown.focused, 'retry');
      assert.equal(srv.continues.length, 0, 'nothing went back yet');
      await sleep(DURATION_S * 1000); // the old countdown would have ended by now
      assert.equal(srv.continues.length, 0, 'the lost challenge never decides on its own');
      assert.equal(await browser.executeScript(() => document.documentElement.dataset.phase), 'error');

      const retriedAt = Date.now();
      await browser.clickSelector('#retry');
      await browser.waitFor(() => document.documentElement.dataset.phase === 'challenge', [], {
        timeoutMs: 30_000,
        what: 'a new challenge after Try again',
      });
      const raw = await srv.waitForContinue(DURATION_S * 1000 + 30_000);
      assertContinue(raw, origin, { state: 'stop-1', notsmiling: 'true' });
      const took = srv.requests.find((r) => r.url === raw).time - retriedAt;
      assert.ok(took >= DURATION_S * 1000, `the new challenge ran its whole countdown (${took} ms)`);
    });
  });

  test('2. track.stop() then Return to sign-in: notsmiling=false&reason=camera_lost', T, async () => {
    await withPage({ camera: 'neutral' }, async (ctx) => {
      const { srv, browser, origin } = ctx;
      await startChallenge(ctx, 'stop-2');
      await onTracks(browser, (tracks) => tracks.forEach((tr) => tr.stop()));
      const shown = await errorScreen(browser, 'the error screen after track.stop()');
      assert.match(shown.message, LOST);
      await browser.clickSelector('#return');
      assertContinue(await srv.waitForContinue(10_000), origin, { state: 'stop-2', notsmiling: 'false', reason: 'camera_lost' });
    });
  });

  test('3. a device that disappears (`ended` event, the track still delivering): camera_lost at once', T, async () => {
    await withPage({ camera: 'neutral' }, async (ctx) => {
      const { srv, browser, origin } = ctx;
      await startChallenge(ctx, 'ended-3');
      // Only the event: readyState stays "live" and frames keep coming; the page must
      // still stop counting them, and stop the track itself.
      await onTracks(browser, (tracks) => tracks.forEach((tr) => tr.dispatchEvent(new Event('ended'))));
      const shown = await errorScreen(browser, 'the error screen after an ended event');
      assert.match(shown.message, LOST);
      assert.deepEqual(shown.tracks, ['ended'], 'the page stopped the camera');
      await browser.clickSelector('#return');
      assertContinue(await srv.waitForContinue(10_000), origin, { state: 'ended-3', notsmiling: 'false', reason: 'camera_lost' });
    });
  });

  test('4. a mute longer than the grace loses the camera; a short one is forgiven', T, async (t) => {
    await withPage({ camera: 'neutral' }, async (ctx) => {
      const { srv, browser, origin } = ctx;
      await startChallenge(ctx, 'mute-4');
      const mutedAt = Date.now();
      await onTracks(browser, (tracks) => tracks.forEach((tr) => tr.dispatchEvent(new Event('mute'))));
      await sleep(500);
      assert.equal(await browser.executeScript(() => document.documentElement.dataset.phase), 'challenge', 'still running within the grace');
      const shown = await errorScreen(browser, 'the error screen after a long mute');
      const after = Date.now() - mutedAt;
      t.diagnostic(`lost ${after} ms after the mute`);
      assert.ok(after >= 1_000, `not before the 1 s grace (${after} ms)`);
      assert.match(shown.message, LOST);
      await browser.clickSelector('#return');
      assertContinue(await srv.waitForContinue(10_000), origin, { state: 'mute-4', notsmiling: 'false', reason: 'camera_lost' });
    });
    await withPage({ camera: 'neutral' }, async (ctx) => {
      const { srv, browser, origin } = ctx;
      await startChallenge(ctx, 'mute-4b');
      await onTracks(browser, (tracks) => {
        tracks.forEach((tr) => tr.dispatchEvent(new Event('mute')));
        setTimeout(() => tracks.forEach((tr) => tr.dispatchEvent(new Event('unmute'))), 400);
      });
      assertContinue(await srv.waitForContinue(DURATION_S * 1000 + 30_000), origin, { state: 'mute-4b', notsmiling: 'true' });
    });
  });

  test('5. frozen frames: a still picture as the camera fails with no_face; the live y4m camera passes', T, async (t) => {
    const still = stillCamera(path.join(OUT, 'neutral.png'));
    await withPage({ camera: 'neutral', initScript: still }, async (ctx) => {
      const r = await runChallenge(ctx, q({ state: 'still-5' }));
      t.diagnostic(`still picture: ${JSON.stringify(r.dataset)}`);
      assertContinue(r.raw, ctx.origin, { state: 'still-5', notsmiling: 'false', reason: 'no_face' });
      assert.ok(Number(r.dataset?.frozenFrames) > 0, `data-frozen-frames > 0 (got ${r.dataset?.frozenFrames})`);
      // Frozen frames are most of them: only the first second of the picture counted.
      assert.ok(Number(r.dataset.frozenFrames) >= Number(r.dataset.framesAnalysed) / 2,
        `${r.dataset.frozenFrames} of ${r.dataset.framesAnalysed} frames frozen`);
    });
    // Control: the same canvas camera with a one-pixel sway passes, so the failure above
    // is the frozen-frame rule and not the canvas path.
    await withPage({ camera: 'neutral', initScript: stillCamera(path.join(OUT, 'neutral.png'), { sway: true }) }, async (ctx) => {
      const r = await runChallenge(ctx, q({ state: 'sway-5' }));
      t.diagnostic(`swaying canvas: frozen ${r.dataset?.frozenFrames} of ${r.dataset?.framesAnalysed}`);
      assertContinue(r.raw, ctx.origin, { state: 'sway-5', notsmiling: 'true' });
      assert.equal(r.dataset?.frozenFrames, '0');
    });
    // The same scene from the y4m file sways by a pixel from frame to frame, as any live
    // camera's frames differ: nothing is frozen.
    await withPage({ camera: 'neutral' }, async (ctx) => {
      const r = await runChallenge(ctx, q({ state: 'live-5' }));
      t.diagnostic(`live camera: frozen ${r.dataset?.frozenFrames} of ${r.dataset?.framesAnalysed}`);
      assertContinue(r.raw, ctx.origin, { state: 'live-5', notsmiling: 'true' });
      assert.equal(r.dataset?.frozenFrames, '0');
    });
  });

  test('6. signed mode: a lost camera offers no Try again; Return sends reason=camera_lost unsigned', T, async (t) => {
    const verifier = await startVerifier();
    let browser;
    try {
      browser = await launchBrowser({ fakeCamera: await cameraFile('neutral') });
      await browser.navigate(`${verifier.origin}/demo`, 30_000);
      await clickStart(browser, { click: true });
      await browser.waitFor(() => document.documentElement.dataset.phase === 'challenge', [], {
        timeoutMs: 30_000,
        what: 'the countdown (the verifier opened the challenge)',
      });
      assert.equal(await browser.executeScript(() => document.documentElement.dataset.verify), 'true');
      await sleep(1_500);
      await onTracks(browser, (tracks) => tracks.forEach((tr) => tr.stop()));
      const shown = await errorScreen(browser, 'the error screen in the signed mode');
      t.diagnostic(JSON.stringify(shown));
      assert.match(shown.message, LOST);
      assert.equal(shown.retry, false, 'no Try again: the session token is accepted once');
      assert.equal(shown.back, true);
      await browser.clickSelector('#return');
      // The demo server's /continue takes only the signed POST (a GET is 405), so read
      // the way back from the browser's own network log.
      let back;
      for (let i = 0; !back && i < 50; i++) {
        await sleep(200);
        back = (await browser.performanceEvents())
          .filter((e) => e.method === 'Network.requestWillBeSent')
          .map((e) => e.params.request)
          .find((r) => new URL(r.url).pathname === '/continue');
      }
      assert.ok(back, 'the page went back to /continue');
      t.diagnostic(`${back.method} ${back.url}`);
      assert.equal(back.method, 'GET', 'a failure goes back in the URL, not as a signed form');
      const search = new URL(back.url).search;
      const params = new URLSearchParams(search);
      assert.equal(params.get('notsmiling'), 'false');
      assert.equal(params.get('reason'), 'camera_lost');
      assert.ok(params.get('state'), 'the state goes back');
      assert.ok(!params.has('smile_token'), 'no token: a failure needs no signature');
    } finally {
      if (browser) await browser.quit();
      await verifier.close();
    }
  });
});
