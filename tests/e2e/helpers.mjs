// Shared pieces of the end-to-end tests: paths, fake cameras, one page run.

import { existsSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pngjs from 'pngjs';
import { startServer } from '../../tools/serve.mjs';
import { launchBrowser } from './webdriver.mjs';
import { emptyScene, faceScene, frames, writeY4m } from './y4m.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// SMILE_E2E_WWW points the suite at another directory (used to develop the harness).
export const WWW = process.env.SMILE_E2E_WWW ? path.resolve(process.env.SMILE_E2E_WWW) : path.join(REPO, 'www');
export const OUT = path.join(REPO, 'target/e2e');
export const SCREENSHOTS = path.join(OUT, 'screenshots');
export const FIXTURES = path.join(REPO, 'tests/fixtures');
export const DURATION_S = 5;
/** The page redirects ~1 s after its verdict; allow this long. */
export const REDIRECT_TIMEOUT_MS = 8_000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Throws a clear message when the page or its build output is missing. */
export function checkBuilt() {
  const missing = [];
  if (!existsSync(path.join(WWW, 'index.html'))) missing.push('www/index.html (the page itself)');
  const has = (d, ext) => existsSync(d) && readdirSync(d).some((f) => f.endsWith(ext));
  const pkg = path.join(WWW, 'pkg');
  if (!existsSync(path.join(pkg, 'smile-factor.js'))) missing.push('www/pkg/smile-factor.js (the package entry)');
  if (!has(path.join(pkg, 'engine'), '.wasm')) missing.push('www/pkg/engine/*.wasm (the engine)');
  if (!has(path.join(pkg, 'models'), '.onnx')) missing.push('www/pkg/models/*.onnx (the models)');
  if (missing.length) {
    throw new Error(`the page is not built: missing ${missing.join(', ')}. Run \`./run build\` first (from the repository root).`);
  }
}

/** Scenes for the fake camera, written once as target/e2e/<name>.y4m (+ a .png preview). */
export const SCENES = {
  neutral: () => faceScene(path.join(FIXTURES, 'crops/neutral_1.png')),
  smile: () => faceScene(path.join(FIXTURES, 'crops/smile_1.png')),
  empty: () => emptyScene(),
  // Other cameras (media.test.mjs): a portrait phone camera, and a small old webcam with
  // the face at the same share of the frame's height as in the 640x480 scene.
  portrait: () => faceScene(path.join(FIXTURES, 'crops/neutral_1.png'), 3.2, 480, 640),
  small: () => faceScene(path.join(FIXTURES, 'crops/neutral_1.png'), 1.6, 320, 240),
};

const cameraFiles = new Map();
export async function cameraFile(name) {
  if (!cameraFiles.has(name)) {
    const scene = SCENES[name]();
    mkdirSync(OUT, { recursive: true });
    const png = new pngjs.PNG({ width: scene.width, height: scene.height });
    png.data = Buffer.from(scene.data);
    writeFileSync(path.join(OUT, `${name}.png`), pngjs.PNG.sync.write(png));
    cameraFiles.set(name, await writeY4m(path.join(OUT, `${name}.y4m`), frames(scene)));
  }
  return cameraFiles.get(name);
}

const phase = () => document.documentElement.dataset.phase;
const dataset = () => ({ ...document.documentElement.dataset });

/**
 * Serves www/ (config: returnUrl = this server, duration 5 s), opens the page in a fresh
 * Chromium with the given fake camera, and hands `body` the pieces. Always cleans up.
 * @param {object} o
 * @param {'neutral'|'smile'|'empty'|'portrait'|'small'} [o.camera='neutral']
 * @param {boolean|null} [o.grantCamera=true]
 * @param {function} [o.hold]  passed to the server: holds chosen file requests
 * @param {string} [o.initScript]  run in every document before its own scripts
 * @param {string} [o.root=WWW]  the directory served (a copy of www/ with test media, say)
 * @param {(ctx: {srv, browser, origin, open}) => Promise<any>} body
 */
export async function withPage({ camera = 'neutral', grantCamera = true, config, hold, initScript, root = WWW } = {}, body) {
  const srv = await startServer({
    root,
    config: config ?? ((origin) => ({ returnUrl: origin, duration: DURATION_S })),
    hold,
  });
  let browser;
  try {
    browser = await launchBrowser({ fakeCamera: await cameraFile(camera), grantCamera });
    if (initScript) await browser.cdp('Page.addScriptToEvaluateOnNewDocument', { source: initScript });
    // Start from a blank page and drop the log of the new-tab page Chromium opened with.
    await browser.navigate('about:blank');
    await browser.getLog('performance');
    const open = async (query) => {
      await browser.navigate(`${srv.origin}/${query}`, 30_000);
      // `loading` lasts while the engine and models load: wait for a settled phase.
      return browser.waitFor(() => {
        const p = document.documentElement.dataset.phase;
        return p && p !== 'loading' ? p : null;
      }, [], { timeoutMs: 20_000, what: 'the page to finish loading (dataset.phase set and != loading)' });
    };
    return await body({ srv, browser, origin: srv.origin, open });
  } finally {
    if (browser) await browser.quit();
    await srv.close();
  }
}

/** Waits until #start is visible and enabled (the page may enable it once the engine is ready). */
export async function clickStart(browser, { click = false } = {}) {
  await browser.waitFor(() => {
    const b = document.getElementById('start');
    return !!b && !b.disabled && b.offsetParent !== null;
  }, [], { timeoutMs: 20_000, what: '#start to be visible and enabled' });
  if (click) await browser.clickSelector('#start');
}

/**
 * One whole challenge: open `query`, expect the start screen, click Start, wait for the
 * verdict and for the redirect to reach /continue. Returns what happened.
 */
export async function runChallenge(ctx, query, { screenshots = false, verdictTimeoutMs = 30_000 } = {}) {
  const { srv, browser, open, origin } = ctx;
  const first = await open(query);
  if (first !== 'start') {
    const msg = await browser.executeScript(() => document.getElementById('error-message')?.textContent ?? '');
    throw new Error(`expected the start screen, got phase "${first}" ${msg ? `(error: ${msg})` : ''}`);
  }
  await clickStart(browser);
  if (screenshots) await browser.screenshot(path.join(SCREENSHOTS, 'start.png'));
  const t0 = Date.now();
  await browser.clickSelector('#start');

  let ds = null;
  let challengeShot = false;
  let challengeAt = null; // first time the poll saw phase=challenge (the countdown runs from about then)
  const deadline = t0 + DURATION_S * 1000 + verdictTimeoutMs;
  // Poll the page until the verdict is in its dataset (or the page has already left).
  while (Date.now() < deadline) {
    let p;
    try {
      p = await browser.executeScript(phase, [], 5_000);
    } catch {
      break; // navigating away: the redirect is under way
    }
    if (p === 'challenge' && challengeAt === null) challengeAt = Date.now();
    if (p === 'challenge' && screenshots && !challengeShot && Date.now() - t0 > 1_500) {
      challengeShot = true;
      await browser.screenshot(path.join(SCREENSHOTS, 'challenge.png')).catch(() => {});
    }
    if (p === 'result' || p === 'error') {
      ds = await browser.executeScript(dataset, [], 5_000).catch(() => null);
      if (screenshots && p === 'result') await browser.screenshot(path.join(SCREENSHOTS, 'result.png')).catch(() => {});
      break;
    }
    if (srv.continues.length) break;
    await sleep(50);
  }
  // waitForContinue also returns a /continue that arrived before the call.
  const wait = ds ? REDIRECT_TIMEOUT_MS : Math.max(1_000, deadline - Date.now());
  const raw = await srv.waitForContinue(wait).catch((e) => {
    throw new Error(ds ? `the page reached phase=${ds.phase} but did not redirect within ${wait} ms (${e.message})` : e.message);
  });
  // When the server received it, not when this loop noticed.
  const received = srv.requests.find((r) => r.url === raw)?.time ?? Date.now();
  const elapsedMs = received - t0;
  const url = new URL(raw, origin);
  const sinceChallengeMs = received - (challengeAt ?? t0);
  return { raw, url, elapsedMs, sinceChallengeMs, dataset: ds };
}

/** URLs of DevTools Network.requestWillBeSent (and webSocketCreated) events since the last drain. */
export async function browserRequestUrls(browser) {
  const events = await browser.performanceEvents();
  return events.flatMap((e) =>
    e.method === 'Network.requestWillBeSent' ? [e.params.request.url]
      : e.method === 'Network.webSocketCreated' ? [e.params.url]
        : []);
}

// W3C WebDriver keys for element and shadow-root references.
const ELEMENT_KEY = 'element-6066-11e4-a52e-4f735466cecf';
const SHADOW_KEY = 'shadow-6066-11e4-a52e-4f735466cecf';

/** The element matching `css` inside the open shadow root of the element matching `hostCss`. */
export async function findInShadow(browser, hostCss, css) {
  const host = await browser.findElement(hostCss);
  const shadow = (await browser.cmd('GET', browser.s(`/element/${host}/shadow`)))[SHADOW_KEY];
  const found = await browser.cmd('POST', browser.s(`/shadow/${shadow}/element`), { using: 'css selector', value: css });
  return found[ELEMENT_KEY];
}

/**
 * Waits for the Start button in the shadow root of `hostCss` to be shown and enabled,
 * then clicks it like a user. `failFast` (a page function) may return a message to stop early.
 */
export async function clickShadowStart(browser, hostCss, { timeoutMs = 60_000, failFast } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'not found';
  for (;;) {
    const early = failFast ? await browser.executeScript(failFast).catch(() => null) : null;
    if (early) throw new Error(`failed before Start: ${early}`);
    try {
      const start = await findInShadow(browser, hostCss, '#start');
      const [enabled, displayed] = await Promise.all([
        browser.cmd('GET', browser.s(`/element/${start}/enabled`)),
        browser.cmd('GET', browser.s(`/element/${start}/displayed`)),
      ]);
      if (enabled && displayed) return browser.click(start);
      last = `found, enabled=${enabled}, displayed=${displayed}`;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) throw new Error(`no enabled Start button in the shadow root of ${hostCss} within ${timeoutMs} ms (${last})`);
    await sleep(200);
  }
}
