// End-to-end soak: one tab, no reload. www/examples/login.html (the strict-CSP embed)
// runs MOUNT_CYCLES mount()/remove cycles, removed at five different points (at once, on
// the start screen, right after Start while the camera is being opened, right after the
// camera started, mid-challenge through the AbortSignal), then CHALLENGES whole challenges.
// Afterwards: no live camera track, no live worker, the JS heap and the engine's wasm
// memory within a bound of the first full challenge's, every result delivered exactly
// once. Test hooks (an init script, never shipped): getUserMedia, Worker and
// WebAssembly.instantiate are wrapped to record tracks, workers and memories.
//
//   cd tests/e2e && npm ci && node --test soak.test.mjs      (about 3 minutes)

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { startServer } from '../../tools/serve.mjs';
import { WWW, cameraFile, checkBuilt } from './helpers.mjs';
import { launchBrowser } from './webdriver.mjs';

const LOGIN = '/examples/login.html';
const MOUNT_CYCLES = 50;
/** Whole challenges at the minimum countdown (5 s): about 6.5 s each with the camera start. */
const CHALLENGES = 20;
const DURATION_S = 5;
const MiB = 1024 * 1024;
/**
 * The bounds, against the first whole challenge's numbers (the first to allocate
 * everything a challenge needs), each after a forced GC. Seen on Chromium 156: a heap of
 * about 1.1 MiB growing some 30-50 KiB over the next 19 challenges (the hooks' own records
 * among it), wasm memory 1.25 MiB unchanged, DOM counters unchanged.
 * - JS heap: at most HEAP_SLACK more, about ten times the growth seen. A leaked frame or
 *   ImageData per challenge (300 KiB at 320x240) fails it at once; anything retaining
 *   27 KiB or more per challenge fails it over 19.
 * - wasm memory grows in 64 KiB pages and never shrinks: at most WASM_SLACK (4 pages).
 * - DOM nodes and listeners (Blink's, not in the V8 heap): at most DOM_SLACK more; one
 *   leaked element holds dozens of nodes of markup, and a running one a dozen listeners.
 */
const HEAP_SLACK = 512 * 1024;
const WASM_SLACK = 256 * 1024;
const DOM_SLACK = 10;

/** Runs in every document before its scripts: records what the soak must find released. */
const HOOKS = `(() => {
  const S = (window.__soak = {
    tracks: [], gumCalls: 0, gumSettled: 0,
    workers: new Set(), workersCreated: 0, workersTerminated: 0,
    memories: [], results: [], ids: new WeakMap(),
  });
  const md = navigator.mediaDevices;
  const gum = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    S.gumCalls += 1;
    try {
      const stream = await gum(constraints);
      S.tracks.push(...stream.getTracks());
      return stream;
    } finally {
      S.gumSettled += 1;
    }
  };
  const NativeWorker = window.Worker;
  window.Worker = class extends NativeWorker {
    constructor(...args) {
      super(...args);
      S.workersCreated += 1;
      S.workers.add(this);
    }
    terminate() {
      if (S.workers.delete(this)) S.workersTerminated += 1;
      return super.terminate();
    }
  };
  const keep = (result) => {
    const instance = result instanceof WebAssembly.Instance ? result : result?.instance;
    for (const v of Object.values(instance?.exports ?? {})) {
      if (v instanceof WebAssembly.Memory) S.memories.push(v);
    }
    return result;
  };
  for (const name of ['instantiate', 'instantiateStreaming']) {
    const native = WebAssembly[name];
    WebAssembly[name] = function (...args) { return native.apply(this, args).then(keep); };
  }
  // Every result event, by the id the test gave its element (a WeakMap: no element kept alive).
  document.addEventListener('smile-factor-result', (e) => {
    S.results.push({ id: S.ids.get(e.target) ?? null, notsmiling: e.detail?.notsmiling, reason: e.detail?.reason });
  }, true);
})();`;

/**
 * One mount()/remove cycle in the page. `mode` says when the element goes: 'at-once',
 * 'start-screen', 'after-start' (camera being opened), 'camera-on' (a track just
 * started), 'challenge' (mid-countdown, by aborting mount's signal).
 */
function cycle(id, mode, abort, delayMs, hold, done) {
  const S = window.__soak;
  const t0 = performance.now();
  const fail = (msg) => done({ error: msg });
  import('../pkg/smile-factor.js').then(({ mount }) => {
    const box = document.createElement('div');
    document.body.append(box);
    const controller = new AbortController();
    const settled = { resolved: 0, rejected: 0 };
    S.settle ??= [];
    S.settle.push(settled);
    mount(box, { duration: 5, signal: controller.signal }).then(
      () => { settled.resolved += 1; },
      () => { settled.rejected += 1; },
    );
    const el = box.querySelector('smile-factor');
    S.ids.set(el, id);
    const tracksBefore = S.tracks.length;
    const start = () => el.shadowRoot?.getElementById('start');
    const ready = () => { const b = start(); return b && !b.disabled && b.offsetParent !== null; };
    const end = (reply = done) => {
      const phase = el.dataset.phase ?? null;
      if (abort) controller.abort(new Error('soak'));
      else el.remove();
      box.remove();
      reply({ mode, phase, ms: Math.round(performance.now() - t0) });
    };
    const until = (cond, then, limitMs = 30000) => {
      const t = performance.now();
      const poll = () => {
        if (cond()) return then();
        if (performance.now() - t > limitMs) return fail(`${mode}: timed out (phase ${el.dataset.phase})`);
        setTimeout(poll, 10);
      };
      poll();
    };
    if (mode === 'at-once') return end();
    until(ready, () => {
      if (mode === 'start-screen') return end();
      start().click();
      if (mode === 'after-start') return end();
      if (mode === 'camera-on') return until(() => S.tracks.length > tracksBefore, end);
      // hold: leave it running for the test to look at; window.__soakEnd(done) ends it.
      until(() => el.dataset.phase === 'challenge', () => (hold
        ? done({ held: (window.__soakEnd = end) && true })
        : setTimeout(end, delayMs)));
    });
  }, (e) => fail(String(e)));
}

/** One whole challenge in the page: mount, press Start, wait for the result, then remove it. */
function challenge(id, done) {
  const S = window.__soak;
  import('../pkg/smile-factor.js').then(async ({ mount }) => {
    const box = document.createElement('div');
    document.body.append(box);
    const settled = { resolved: 0, rejected: 0 };
    S.settle ??= [];
    S.settle.push(settled);
    const t0 = performance.now();
    const result = mount(box, { duration: 5 });
    const el = box.querySelector('smile-factor');
    S.ids.set(el, id);
    const poll = setInterval(() => {
      const b = el.shadowRoot?.getElementById('start');
      if (b && !b.disabled && b.offsetParent !== null) {
        clearInterval(poll);
        b.click();
      }
    }, 10);
    let detail;
    try {
      detail = await result;
      settled.resolved += 1;
    } catch (e) {
      settled.rejected += 1;
      clearInterval(poll);
      return done({ error: String(e) });
    }
    // Once decided, before the integrator removes it: what is still running?
    const liveTracks = S.tracks.filter((t) => t.readyState === 'live').length;
    const liveWorkers = S.workers.size;
    // Let a second (wrong) result event arrive, if one were coming.
    await new Promise((r) => setTimeout(r, 50));
    el.remove();
    box.remove();
    done({ ms: Math.round(performance.now() - t0), notsmiling: detail.notsmiling, reason: detail.reason, liveTracks, liveWorkers });
  }, (e) => done({ error: String(e) }));
}

/** After a forced GC: the JS heap (CDP and performance.memory) and the wasm memories. */
async function measure(browser) {
  await browser.cdp('HeapProfiler.collectGarbage');
  await browser.cdp('HeapProfiler.collectGarbage');
  const { usedSize } = await browser.cdp('Runtime.getHeapUsage');
  // Blink's own objects (DOM nodes, listeners) are not in the V8 heap: count them too.
  const dom = await browser.cdp('Memory.getDOMCounters');
  const page = await browser.executeScript(() => ({
    perfHeap: performance.memory?.usedJSHeapSize ?? null,
    wasm: window.__soak.memories.map((m) => m.buffer.byteLength),
  }));
  return { heap: usedSize, nodes: dom.nodes, listeners: dom.jsEventListeners, documents: dom.documents, ...page };
}

/** Everything still running, as the hooks (and DevTools, for workers) see it. */
async function live(browser) {
  const page = await browser.executeScript(() => {
    const S = window.__soak;
    return {
      gumCalls: S.gumCalls,
      gumSettled: S.gumSettled,
      tracks: S.tracks.length,
      liveTracks: S.tracks.filter((t) => t.readyState === 'live').length,
      workersCreated: S.workersCreated,
      workersTerminated: S.workersTerminated,
      liveWorkers: S.workers.size,
      settle: S.settle ?? [],
      results: S.results,
      elements: document.querySelectorAll('smile-factor').length,
    };
  });
  const { targetInfos } = await browser.cdp('Target.getTargets').catch(() => ({ targetInfos: null }));
  page.cdpWorkers = targetInfos ? targetInfos.filter((t) => /worker/.test(t.type)).length : null;
  return page;
}

const mb = (n) => `${(n / MiB).toFixed(2)} MiB`;

describe('soak: one tab, many mounts and challenges', { concurrency: false }, () => {
  checkBuilt();
  before(async () => {
    await cameraFile('neutral');
  });

  test(`${MOUNT_CYCLES} mount()/remove cycles, then ${CHALLENGES} challenges: nothing left running, memory bounded, each result once`, { timeout: 420_000 }, async (t) => {
    const srv = await startServer({ root: WWW });
    let browser;
    try {
      browser = await launchBrowser({ fakeCamera: await cameraFile('neutral') });
      await browser.cdp('Page.addScriptToEvaluateOnNewDocument', { source: HOOKS });
      await browser.navigate(`${srv.origin}${LOGIN}`, 30_000);
      assert.equal(await browser.executeScript(() => typeof window.__soak), 'object', 'the hooks run before the page');

      // 1. mount()/remove cycles.
      const MODES = ['at-once', 'start-screen', 'after-start', 'camera-on', 'challenge'];
      const t0 = Date.now();
      const removedAt = {};
      for (let i = 0; i < MOUNT_CYCLES; i++) {
        const mode = MODES[i % MODES.length];
        // Odd cycles abort mount()'s signal, even ones remove the element; mid-challenge
        // removals come 0..900 ms into the countdown.
        const hold = i === MOUNT_CYCLES - 1;
        let r = await browser.executeAsyncScript(cycle, [`m${i}`, mode, i % 2 === 1, (i * 137) % 900, hold], 60_000);
        assert.equal(r.error, undefined, `cycle ${i}: ${r.error}`);
        if (hold) {
          // The last cycle stays mid-challenge for a moment: the counters must see its
          // camera and worker, so that their zeros below mean something.
          assert.equal(mode, 'challenge');
          const running = await live(browser);
          t.diagnostic(`mid-challenge: live tracks ${running.liveTracks}, live workers ${running.liveWorkers}, DevTools workers ${running.cdpWorkers}`);
          assert.equal(running.liveTracks, 1, 'the hook sees the running camera');
          assert.equal(running.liveWorkers, 1, 'the hook sees the running worker');
          assert.equal(running.cdpWorkers, 1, 'DevTools lists the running worker');
          r = await browser.executeAsyncScript((done) => window.__soakEnd(done));
        }
        removedAt[mode] ??= [];
        removedAt[mode].push(r.phase);
      }
      const mountsMs = Date.now() - t0;
      // A camera asked for just before removal may still be opening: let it settle.
      await browser.waitFor(() => window.__soak.gumSettled === window.__soak.gumCalls, [], {
        timeoutMs: 10_000, what: 'every getUserMedia call to settle',
      });
      const afterMounts = await live(browser);
      const memMounts = await measure(browser);
      t.diagnostic(`${MOUNT_CYCLES} cycles in ${mountsMs} ms; phases at removal ${JSON.stringify(removedAt)}`);
      t.diagnostic(`after the cycles: ${JSON.stringify({ ...afterMounts, settle: undefined, results: afterMounts.results.length })}`);
      assert.equal(afterMounts.liveTracks, 0, 'no camera track left live by the removed elements');
      assert.equal(afterMounts.liveWorkers, 0, 'every worker terminated');
      assert.equal(afterMounts.elements, 0);
      assert.deepEqual(afterMounts.results, [], 'a removed element reports nothing');
      assert.equal(afterMounts.settle.filter((s) => s.resolved).length, 0, 'no mount() resolved');
      assert.equal(afterMounts.settle.filter((s) => s.rejected === 1).length, MOUNT_CYCLES / 2,
        'each aborted mount() rejected once');

      // 2. Whole challenges.
      const runs = [];
      let memFirst;
      for (let i = 0; i < CHALLENGES; i++) {
        const r = await browser.executeAsyncScript(challenge, [`c${i}`], DURATION_S * 1000 + 60_000);
        assert.equal(r.error, undefined, `challenge ${i}: ${r.error}`);
        runs.push(r);
        if (i === 0) memFirst = await measure(browser);
      }
      const challengesMs = runs.reduce((a, r) => a + r.ms, 0);
      await browser.waitFor(() => window.__soak.gumSettled === window.__soak.gumCalls, [], {
        timeoutMs: 10_000, what: 'every getUserMedia call to settle',
      });
      const end = await live(browser);
      const memEnd = await measure(browser);
      t.diagnostic(`${CHALLENGES} challenges in ${challengesMs} ms (${runs.map((r) => r.ms).join(', ')})`);
      t.diagnostic(`right after each verdict: live tracks ${JSON.stringify(runs.map((r) => r.liveTracks))}, live workers ${JSON.stringify(runs.map((r) => r.liveWorkers))}`);
      t.diagnostic(`at the end: ${JSON.stringify({ ...end, settle: undefined, results: end.results.length })}`);
      t.diagnostic(`memory after the cycles: heap ${mb(memMounts.heap)} (performance.memory ${mb(memMounts.perfHeap)}), wasm ${memMounts.wasm.map(mb)}, DOM ${memMounts.nodes} nodes, ${memMounts.listeners} listeners, ${memMounts.documents} documents`);
      t.diagnostic(`memory after challenge 1: heap ${mb(memFirst.heap)} (performance.memory ${mb(memFirst.perfHeap)}), wasm ${memFirst.wasm.map(mb)}, DOM ${memFirst.nodes} nodes, ${memFirst.listeners} listeners, ${memFirst.documents} documents`);
      t.diagnostic(`memory at the end:       heap ${mb(memEnd.heap)} (performance.memory ${mb(memEnd.perfHeap)}), wasm ${memEnd.wasm.map(mb)}, DOM ${memEnd.nodes} nodes, ${memEnd.listeners} listeners, ${memEnd.documents} documents`);

      for (const [i, r] of runs.entries()) {
        assert.equal(r.notsmiling, true, `challenge ${i}: neutral passes (${r.reason})`);
      }
      assert.equal(end.liveTracks, 0, 'no live camera track');
      assert.equal(end.liveWorkers, 0, 'no live worker (created minus terminated)');
      if (end.cdpWorkers !== null) assert.equal(end.cdpWorkers, 0, 'DevTools lists no worker');
      assert.equal(end.elements, 0);
      // Exactly once: one event per challenge element, none for the removed ones, and
      // each mount() promise settled once.
      const ids = end.results.map((r) => r.id);
      assert.deepEqual(ids, runs.map((_, i) => `c${i}`), 'one result event per challenge, in order');
      const challengeSettles = end.settle.slice(MOUNT_CYCLES);
      assert.equal(challengeSettles.length, CHALLENGES);
      assert.ok(challengeSettles.every((s) => s.resolved === 1 && s.rejected === 0), 'each mount() resolved exactly once');
      assert.ok(end.settle.slice(0, MOUNT_CYCLES).every((s) => s.resolved === 0 && s.rejected <= 1), 'no late settlement of a removed mount()');
      // Memory: the engine's page instance is one memory, compiled once for the tab.
      assert.equal(memEnd.wasm.length, 1, 'one engine instance on the page');
      assert.ok(memEnd.heap <= memFirst.heap + HEAP_SLACK,
        `JS heap ${mb(memEnd.heap)} within ${mb(HEAP_SLACK)} of the first challenge's ${mb(memFirst.heap)}`);
      assert.ok(memEnd.nodes <= memFirst.nodes + DOM_SLACK, `DOM nodes ${memEnd.nodes} vs ${memFirst.nodes}`);
      assert.ok(memEnd.listeners <= memFirst.listeners + DOM_SLACK, `listeners ${memEnd.listeners} vs ${memFirst.listeners}`);
      assert.equal(memEnd.documents, memFirst.documents, 'no document left behind');
      assert.ok(memEnd.wasm[0] <= memFirst.wasm[0] + WASM_SLACK,
        `wasm memory ${mb(memEnd.wasm[0])} within ${mb(WASM_SLACK)} of the first challenge's ${mb(memFirst.wasm[0])}`);
    } finally {
      if (browser) await browser.quit();
      await srv.close();
    }
  });
});
