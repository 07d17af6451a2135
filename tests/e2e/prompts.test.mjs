// End-to-end: the verifier's just-in-time prompts and smile mode, in headless Chromium
// against the real verifier server (demo mode) behind the e2e harness, with the
// test-only canvas camera (tests/e2e/canvas-camera.js) that the harness injects: it
// shows the smiling fixture face while the page shows a prompt, when told to follow them.
// Needs `./run build` and `cargo build -p smile-factor-server`.
//
// The false-reject rate (a cooperative user failing) is a measurement, not a test:
//   SMILE_FALSE_REJECT_RUNS=10 node --test prompts.test.mjs
// adds N cooperative logins (neutral, a smile when prompted, neutral again) and prints a
// table; SMILE_REACT_MS (default 750: a 250 ms reaction plus a 500 ms smile onset) delays
// the camera's every switch, as a person would.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startServer } from '../../tools/serve.mjs';
import { checkBuilt, clickStart, WWW } from './helpers.mjs';
import { launchBrowser } from './webdriver.mjs';


const DURATION_MS = 15_000;
const FRAME_INTERVAL_MS = 1_000;
// Load (up to 20 s on a busy machine), the countdown, the result screen and /continue.
const T = { timeout: 120_000 };

/** Keeps what the canvas camera switched, across the navigation to /continue. */
const RECORD_SWITCHES = `(() => {
  const keep = () => {
    const cam = window.__smileFakeCamera;
    if (cam) sessionStorage.setItem('e2e-fakecam', JSON.stringify(cam.log));
  };
  setInterval(keep, 100);
  addEventListener('pagehide', keep);
})();`;

/**
 * One signed login with the canvas camera in `fakecam` mode (`auto`: follows the prompts;
 * `auto-neutral`: ignores them; `smile`/`neutral`: one face throughout; `auto-straight`:
 * smiles, and a straight face on each prompt). Returns the identity provider's checks.
 */
async function promptedLogin({ fakecam, mode, reactMs = 0 }) {
  const srv = await startServer({
    root: WWW,
    fakeCamera: true, // canvas-camera.js: follows the prompt from `fakecam` in the URL
    upstreamOptions: { durationMs: DURATION_MS, frameIntervalMs: FRAME_INTERVAL_MS },
    // The demo's own config, returning to the harness (whose POST /continue is the server's).
    config: (origin) => ({ returnUrl: origin, duration: DURATION_MS / 1000, verify: true, ...(mode ? { mode } : {}) }),
  });
  let browser;
  try {
    // A fresh state and ctx token from the server's /demo, opened on the harness's origin.
    const demo = await fetch(`${srv.upstream}/demo`, { redirect: 'manual' });
    const link = new URL(demo.headers.get('location'), srv.upstream);
    link.searchParams.set('fakecam', fakecam);
    if (reactMs) link.searchParams.set('react', String(reactMs));
    browser = await launchBrowser({});
    await browser.navigate('about:blank');
    await browser.cdp('Page.addScriptToEvaluateOnNewDocument', { source: RECORD_SWITCHES });
    await browser.navigate(`${srv.origin}${link.pathname}${link.search}`, 30_000);
    const phase = await browser.waitFor(() => {
      const p = document.documentElement.dataset.phase;
      return p && p !== 'loading' ? p : null;
    }, [], { timeoutMs: 30_000, what: 'the page to load' });
    assert.equal(phase, 'start');
    assert.equal(await browser.executeScript(() => typeof window.__smileFakeCamera), 'object', 'the canvas camera was injected');
    await clickStart(browser, { click: true });
    const result = await browser.waitFor(() => {
      const s = document.getElementById('summary');
      if (!s || location.pathname !== '/continue') return null;
      const checks = [...document.querySelectorAll('#checks li')].map((li) => li.textContent);
      return { ...s.dataset, summary: s.textContent, checks, url: location.href };
    }, [], { timeoutMs: DURATION_MS + 45_000, what: 'the POST to /continue and its checks' });
    const switches = await browser.executeScript(() => JSON.parse(sessionStorage.getItem('e2e-fakecam') || '[]'));
    const frames = srv.requests.filter((r) => r.method === 'POST' && /\/frames$/.test(r.url));
    return { ...result, switches, crops: frames.length, refused: frames.filter((f) => f.status !== 200).map((f) => f.status) };
  } finally {
    if (browser) await browser.quit();
    await srv.close();
  }
}

function counts(r) {
  const [m, t] = r.prompts.split('/').map(Number);
  return { met: m, total: t };
}

describe('prompts: the verifier asks for a smile on cue', { concurrency: false }, () => {
  checkBuilt();

  test('following the prompts passes, with every prompt met', T, async (t) => {
    const r = await promptedLogin({ fakecam: 'auto' });
    assert.equal(r.valid, 'true', r.checks.join(' | '));
    const { met: m, total: n } = counts(r);
    assert.ok(n >= 2 && n <= 3, `2 or 3 prompts in a 15 s countdown (${r.prompts})`);
    // The camera smiled once per prompt shown, and only then.
    const smiles = r.switches.filter((s) => s.face === 'smile').length;
    assert.equal(smiles, n, `the page showed ${smiles} prompts: ${JSON.stringify(r.switches)}`);
    assert.equal(r.notsmiling, 'true', `${r.summary} (${r.prompts})`);
    assert.equal(m, n);
    assert.equal(r.mode, 'straight');
    t.diagnostic(`followed: ${r.summary}, prompts ${r.prompts}, ${r.crops} crops`);
  });

  test('a looped neutral clip that ignores the prompts fails with prompt_missed', T, async (t) => {
    const r = await promptedLogin({ fakecam: 'auto-neutral' });
    assert.equal(r.valid, 'true', r.checks.join(' | '));
    assert.equal(r.notsmiling, 'false', r.summary);
    assert.equal(r.reason, 'prompt_missed');
    assert.equal(counts(r).met, 0, r.prompts);
    t.diagnostic(`ignored: ${r.summary}, prompts ${r.prompts}`);
  });

  test('a clip smiling all the time fails', T, async (t) => {
    const r = await promptedLogin({ fakecam: 'smile' });
    assert.equal(r.valid, 'true', r.checks.join(' | '));
    assert.equal(r.notsmiling, 'false', r.summary);
    assert.equal(r.reason, 'smiled');
    t.diagnostic(`always smiling: ${r.summary}, prompts ${r.prompts}`);
  });

  test('smile mode passes a smile that keeps a straight face on cue, and fails a straight face', T, async (t) => {
    const ok = await promptedLogin({ fakecam: 'auto-straight', mode: 'smile' });
    assert.equal(ok.valid, 'true', `${ok.summary} ${ok.url} ${ok.checks.join(' | ')}`);
    assert.equal(ok.mode, 'smile');
    assert.equal(ok.notsmiling, 'true', `${ok.summary} (${ok.prompts})`);
    const { met: m, total: n } = counts(ok);
    assert.ok(n >= 2 && m === n, ok.prompts);
    const straight = await promptedLogin({ fakecam: 'neutral', mode: 'smile' });
    assert.equal(straight.valid, 'true', `${straight.summary} ${straight.url} ${straight.checks.join(' | ')}`);
    assert.equal(straight.notsmiling, 'false', straight.summary);
    assert.equal(straight.reason, 'no_smile');
    assert.equal(straight.mode, 'smile');
    t.diagnostic(`smile mode: ${ok.summary} (${ok.prompts}); straight face: ${straight.reason}`);
  });

  const runs = Number(process.env.SMILE_FALSE_REJECT_RUNS || 0);
  const reactMs = Number(process.env.SMILE_REACT_MS || 750);
  test(`false-reject rate over ${runs} cooperative logins (SMILE_FALSE_REJECT_RUNS)`, { skip: runs < 1, timeout: runs * 90_000 + 10_000 }, async () => {
    const rows = [];
    for (let i = 0; i < runs; i++) {
      const r = await promptedLogin({ fakecam: 'auto', reactMs });
      rows.push({ run: i + 1, notsmiling: r.notsmiling, reason: r.reason || '-', prompts: r.prompts, crops: r.crops, refused: r.refused.join(' ') || '-' });
    }
    const rejected = rows.filter((r) => r.notsmiling !== 'true').length;
    console.log(`\n| run | notsmiling | reason | prompts met/total | crops | crops refused (status) |\n| --- | --- | --- | --- | --- | --- |`);
    for (const r of rows) console.log(`| ${r.run} | ${r.notsmiling} | ${r.reason} | ${r.prompts} | ${r.crops} | ${r.refused} |`);
    console.log(`\nfalse rejects: ${rejected}/${runs} (${((100 * rejected) / runs).toFixed(0)}%), ` +
      `camera reacts after ${reactMs} ms, countdown ${DURATION_MS} ms, crops every ${FRAME_INTERVAL_MS} ms, ${new Date().toISOString().slice(0, 10)}`);
  });
});
