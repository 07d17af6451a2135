#!/usr/bin/env node
// Side-by-side benchmark of smile-factor and face-api.js 1.7.15 (tfjs 4.22 wasm backend,
// SIMD, one thread) in headless Chromium, on the same frames. Prints one table (medians
// and p90, ratio ours / face-api.js, goal, met?) and its notes.
//
//   ./run build                        # www/pkg + www/models (the page and engine under test)
//   (cd tests/e2e && npm ci)           # the fake-camera videos come from tests/e2e/helpers.mjs
//   cd bench && npm ci && node run.mjs [--out ../BENCHMARKS.md]
//
// Options: --www DIR (default: the repository's www/), --out FILE (write the markdown
// report), --calls N (timed calls per micro-benchmark row, default 100), --warmup N (10),
// --runs N (fresh-context challenge runs per page, default 5), --duration S (challenge
// length, 15), --fps N (our "default rate" rows use analysisFps N instead of the page's
// default: to measure a candidate default), --skip micro|pages|smile|throttled (development
// only: leaves those rows out; repeatable), --only micro|pages|smile (skips every other
// part: `--only micro` is rows 1a-1c in a minute or two).
//
// Micro-benchmarks (rows 1a-1c) run on a bench page's main thread (bench/pages/micro.*),
// both engines in one page, their calls alternating one by one so that background load
// and the machine's fast and slow spells hit both engines alike. Page-level rows (2-5)
// load the real pages in a fresh browser context each: ours = www/index.html with a 15 s
// config, the peer = bench/pages/peer.* (face-api.js's detectAllFaces loop), both fed by
// Chromium's fake camera with the neutral face video of the e2e tests, both instrumented
// by bench/probe.js. Ours runs at its default analysisFps and flat out; every page run
// is traced for the CPU rows (6). Then the same pages with the CPU throttled 4x (rows 3-5
// again), and, in a second browser whose camera switches from a neutral to a smiling
// face, the smile delay (rows 7), default, flat out, face-api.js and throttled.
//
// Every page (both engines, micro and challenge) is served by the verifier server (server/,
// demo mode) through tools/serve.mjs's test harness, so all run under the same headers,
// its strict Content-Security-Policy included (a violation fails the run), and every
// context asks for uncompressed bodies (Accept-Encoding: identity): the byte rows count
// body bytes, checked against what the server sent.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import pngjs from 'pngjs';
import { startServer } from '../tools/serve.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(BENCH, '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FACEAPI_DIR = path.join(BENCH, 'node_modules', '@vladmandic', 'face-api');
const TFJS_WASM_DIR = path.join(BENCH, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
const FIXTURES = path.join(REPO, 'tests', 'fixtures');
const SITE = path.join(REPO, 'target', 'bench', 'site');
const PROBE = path.join(BENCH, 'probe.js');
const FIRST_MARK = 'smile-factor:first-analysis';
const DETECTOR_SIZES = [224, 320, 416];
const MICRO_CHUNKS = 4;
const GLOBAL_TIMEOUT_MS = 45 * 60 * 1000;
// CPU per challenge second comes from a Chromium trace of each page run: the top-level task
// events carry thread CPU time (tdur), the probe's marks bound the challenge.
const TRACE_CATEGORIES = ['toplevel', 'blink.user_timing', '__metadata'];
const CHALLENGE_MARKS = ['bench:challenge-start', 'bench:challenge-end'];
/** The low-end rows: CDP Emulation.setCPUThrottlingRate, the usual mid-range mobile setting. */
const THROTTLE = 4;
/** Our page flat out: analysisFps 60 analyses every frame the worker can take. */
const FLAT_OUT_FPS = 60;
/** The goal: CPU of the worker and main thread together, ms per challenge second (20% of a core). */
const CPU_GOAL_MS_PER_S = 200;
// The smile-delay clip: neutral, then smiling, looped by Chromium; a marker square tells
// the probe which frames are which. The switch counted is the first one at least
// SWITCH_AFTER_START_MS after the countdown began, so the page is in its steady state.
const SWITCH_NEUTRAL_S = 5;
const SWITCH_SMILE_S = 3;
const SWITCH_AFTER_START_MS = 1500;
// Every context asks for uncompressed bodies: the verifier server compresses (gzip/brotli)
// when asked, so this keeps "raw" the body size and lets each run check the counted sizes
// against the bytes the server sent. Both engines alike, micro pages and self-check too.
const EXTRA_HEADERS = { 'Accept-Encoding': 'identity' };
const BROWSER_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage',
];

// ---------------------------------------------------------------- small helpers

function die(message) {
  console.error(`bench: ${message}`);
  process.exit(1);
}

const log = (message) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

/** Rejects after `ms` with a message naming the step, so nothing can hang. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms / 1000} s: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function parseArgs(argv) {
  const opts = { www: path.join(REPO, 'www'), out: null, calls: 100, warmup: 10, runs: 5, duration: 15, fps: null, skip: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`unknown argument ${argv[i]} (see the header of bench/run.mjs)`);
    const [, key, inline] = m;
    if (key === 'help') {
      console.log('usage: node bench/run.mjs [--out FILE] [--www DIR] [--calls 100] [--warmup 10] [--runs 5] [--duration 15] [--fps N] [--skip micro|pages|smile|throttled] [--only micro|pages|smile]');
      process.exit(0);
    }
    if (!['www', 'out', 'skip', 'only', 'calls', 'warmup', 'runs', 'duration', 'fps'].includes(key)) throw new Error(`unknown option --${key} (try --help)`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`--${key} needs a value`);
    if (key === 'www' || key === 'out') opts[key] = path.resolve(value);
    else if (key === 'skip') {
      if (!['micro', 'pages', 'smile', 'throttled'].includes(value)) throw new Error('--skip takes micro, pages, smile or throttled');
      opts.skip.add(value);
    } else if (key === 'only') {
      if (!['micro', 'pages', 'smile'].includes(value)) throw new Error('--only takes micro, pages or smile');
      for (const part of ['micro', 'pages', 'smile']) if (part !== value) opts.skip.add(part);
      if (value === 'micro') opts.skip.add('throttled');
    } else if (key === 'fps') {
      const n = Number(value);
      if (!(n >= 5 && n <= 60)) throw new Error('--fps must be 5 to 60 (the page\'s analysisFps bounds)');
      opts.fps = n;
    } else if (['calls', 'warmup', 'runs', 'duration'].includes(key)) {
      const n = Number(value);
      const min = key === 'warmup' ? 0 : 1;
      if (!Number.isInteger(n) || n < min || n > 100_000) throw new Error(`--${key} must be an integer >= ${min}`);
      opts[key] = n;
    }
  }
  if (opts.duration < 5 || opts.duration > 120) throw new Error('--duration must be 5 to 120 s (the page accepts no other)');
  return opts;
}

const sorted = (xs) => [...xs].sort((a, b) => a - b);
function median(xs) {
  if (!xs.length) return NaN;
  const s = sorted(xs);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
/** Nearest-rank 90th percentile. */
function p90(xs) {
  if (!xs.length) return NaN;
  const s = sorted(xs);
  return s[Math.max(0, Math.ceil(0.9 * s.length) - 1)];
}

const gzipSize = (buf) => zlib.gzipSync(buf, { level: 9 }).length;
/** Brotli at quality 11 (the maximum), as tools/package.mjs precompresses the assets. */
const brotliSize = (buf) => zlib.brotliCompressSync(buf, {
  params: { [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: buf.length },
}).length;
const thousands = (n) => Math.round(n).toLocaleString('en-US');

// ---------------------------------------------------------------- preparation

function checkInputs(opts) {
  const missing = [];
  if (!fs.existsSync(path.join(opts.www, 'index.html'))) missing.push(`${opts.www}/index.html`);
  else {
    try {
      findEngine(opts.www);
    } catch (e) {
      missing.push(`${e.message} (run ./run build)`);
    }
  }
  if (!fs.existsSync(path.join(FACEAPI_DIR, 'dist', 'face-api.esm.js'))) missing.push(`${FACEAPI_DIR} (run npm ci in bench/)`);
  if (!fs.existsSync(path.join(REPO, 'tests', 'e2e', 'node_modules', 'pngjs'))) missing.push('tests/e2e/node_modules (run npm ci in tests/e2e/: the fake-camera videos)');
  if (!fs.existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (set CHROMIUM=/path/to/chromium)`);
  if (missing.length) die(`missing:\n  ${missing.join('\n  ')}`);
}

/** Every file under `dir`, as paths relative to it. */
function walk(dir, rel = '') {
  return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(dir, path.join(rel, e.name)) : [path.join(rel, e.name)]);
}

/**
 * Our engine inside the built www/: the wasm-bindgen glue next to its *_bg.wasm, and the
 * models in the nearest models/ directory at or above the glue. Names may carry a content
 * hash (x.0123abcd.js). Paths relative to www/.
 */
function findEngine(www) {
  const files = walk(www);
  const hashed = (stem, ext) => new RegExp(`^${stem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\.[0-9a-f]{6,})?\\.${ext}$`);
  const inDir = (dir, re) => files.filter((f) => path.dirname(f) === dir && re.test(path.basename(f)));
  const pairs = files.flatMap((f) => {
    const m = /^(.+)_bg(\.[0-9a-f]{6,})?\.wasm$/.exec(path.basename(f));
    if (!m) return [];
    const glue = inDir(path.dirname(f), hashed(m[1], 'js'));
    return glue.length === 1 ? [{ wasm: f, glue: glue[0] }] : [];
  });
  if (pairs.length !== 1) throw new Error(`expected one wasm-bindgen package (x.js + x_bg.wasm) under ${www}, found ${pairs.length}`);
  const { wasm, glue } = pairs[0];
  for (let dir = path.dirname(glue); ; dir = path.dirname(dir)) {
    const models = path.join(dir, 'models');
    const detector = inDir(models, hashed('tiny_face_detector', 'onnx'));
    const expression = inDir(models, hashed('face_expression', 'onnx'));
    // The relaxed-SIMD build next to the plain one (tools/package.mjs), if any.
    const relaxed = inDir(path.dirname(wasm), /^smile_factor_bg_relaxed(\.[0-9a-f]{6,})?\.wasm$/)[0] ?? null;
    if (detector.length === 1 && expression.length === 1) return { glue, wasm, wasmRelaxed: relaxed, detector: detector[0], expression: expression[0] };
    if (dir === '.') break;
  }
  throw new Error(`no models/tiny_face_detector.onnx + face_expression.onnx at or above ${glue} in ${www}`);
}

function readRgba(file) {
  const png = pngjs.PNG.sync.read(fs.readFileSync(file));
  return { width: png.width, height: png.height, data: png.data };
}

/**
 * Assembles target/bench/site: the bench pages, face-api.js + its wasm files + models,
 * our pkg + models (copied from --www), the fixture images as raw RGBA, the self-check.
 * Returns the input manifest for the micro page.
 */
function buildSite(opts) {
  fs.rmSync(SITE, { recursive: true, force: true });
  fs.mkdirSync(SITE, { recursive: true });
  for (const f of fs.readdirSync(path.join(BENCH, 'pages'))) fs.copyFileSync(path.join(BENCH, 'pages', f), path.join(SITE, f));
  fs.cpSync(path.join(BENCH, 'selfcheck'), path.join(SITE, 'selfcheck'), { recursive: true });
  // Deterministic filler the self-check worker fetches.
  const blob = Buffer.alloc(40_000);
  for (let i = 0; i < blob.length; i++) blob[i] = (i * 2654435761) >>> 24;
  fs.writeFileSync(path.join(SITE, 'selfcheck', 'blob.bin'), blob);

  fs.mkdirSync(path.join(SITE, 'faceapi', 'model'), { recursive: true });
  fs.mkdirSync(path.join(SITE, 'faceapi', 'wasm'), { recursive: true });
  fs.copyFileSync(path.join(FACEAPI_DIR, 'dist', 'face-api.esm.js'), path.join(SITE, 'faceapi', 'face-api.esm.js'));
  for (const f of fs.readdirSync(path.join(FACEAPI_DIR, 'model'))) {
    if (/^(tiny_face_detector|face_expression)_model/.test(f)) fs.copyFileSync(path.join(FACEAPI_DIR, 'model', f), path.join(SITE, 'faceapi', 'model', f));
  }
  for (const f of fs.readdirSync(TFJS_WASM_DIR)) {
    if (f.endsWith('.wasm')) fs.copyFileSync(path.join(TFJS_WASM_DIR, f), path.join(SITE, 'faceapi', 'wasm', f));
  }
  // The whole built page, so the engine's glue finds whatever it loads next to itself.
  fs.cpSync(opts.www, path.join(SITE, 'ours'), { recursive: true });
  const engine = findEngine(opts.www);
  const url = (rel) => `./ours/${rel.split(path.sep).join('/')}`;

  fs.mkdirSync(path.join(SITE, 'inputs'));
  const manifest = { crops: [], frames: [], ours: { glue: url(engine.glue), wasm: url(engine.wasm), wasmRelaxed: engine.wasmRelaxed && url(engine.wasmRelaxed), detector: url(engine.detector), expression: url(engine.expression) }, engine };
  const add = (list, dir, file) => {
    const img = readRgba(path.join(FIXTURES, dir, file));
    const name = file.replace(/\.png$/, '');
    fs.writeFileSync(path.join(SITE, 'inputs', `${name}.rgba`), img.data);
    list.push({ name, file: `${name}.rgba`, width: img.width, height: img.height });
  };
  for (const f of fs.readdirSync(path.join(FIXTURES, 'crops')).filter((f) => f.endsWith('.png')).sort()) add(manifest.crops, 'crops', f);
  for (const f of fs.readdirSync(path.join(FIXTURES, 'frames')).filter((f) => /_640x480\.png$/.test(f)).sort()) add(manifest.frames, 'frames', f);
  if (!manifest.crops.length || manifest.crops.some((c) => c.width !== 112 || c.height !== 112)) die('tests/fixtures/crops must hold 112x112 PNGs');
  if (manifest.frames.length < 1) die('tests/fixtures/frames holds no *_640x480.png');
  return manifest;
}

function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown CPU';
  let nproc = os.availableParallelism?.() ?? os.cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch { /* keep Node's count */ }
  return { nproc, model, memGiB: os.totalmem() / 2 ** 30, kernel: os.release() };
}

/** The commit of the repository holding `dir` (the build under test), or 'not in git'. */
function gitCommit(dir) {
  const git = (...args) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const head = git('rev-parse', '--short', 'HEAD');
    const dirty = git('status', '--porcelain', '--untracked-files=no');
    return dirty ? `${head} (+ uncommitted changes)` : head;
  } catch {
    return 'not in git';
  }
}

// ---------------------------------------------------------------- browser

/**
 * A page in a fresh context that asks for uncompressed bodies. Page errors and console
 * errors go to `errors`; Content-Security-Policy violations (Chromium reports them on the
 * console) also to the returned `csp`: every page runs under the verifier server's policy,
 * and a violation fails the run (checkCsp) rather than measuring a half-broken page.
 */
async function newPage(browser, errors, label, contextOptions = {}) {
  const context = await browser.newContext({ ...contextOptions, extraHTTPHeaders: { ...EXTRA_HEADERS, ...contextOptions.extraHTTPHeaders } });
  const page = await context.newPage();
  const csp = [];
  page.on('pageerror', (e) => errors.push(`${label}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    errors.push(`${label}: console: ${m.text()}`);
    if (/Content Security Policy/i.test(m.text())) csp.push(`${label}: ${m.text()}`);
  });
  return { context, page, csp };
}

function checkCsp(csp) {
  if (csp.length) throw new Error(`the server's Content-Security-Policy blocked something:\n  ${csp.join('\n  ')}`);
}

/**
 * The server's records of the requests the counter counted (`files`, per path, with `raw`
 * bytes) must show uncompressed bodies of the counted sizes: otherwise the byte rows would
 * count something other than what was sent. Returns the problems found.
 */
function checkServed(records, files) {
  const counted = new Map(files.map((f) => [f.path, f.raw]));
  const problems = [];
  const checked = new Set();
  for (const r of records) {
    const p = r.url.split('?')[0];
    const encoding = r.headers['content-encoding'];
    if (encoding && encoding !== 'identity') problems.push(`${p}: sent with Content-Encoding: ${encoding} (asked for identity)`);
    if (r.method !== 'GET' || r.status !== 200 || checked.has(p) || !counted.has(p)) continue;
    checked.add(p);
    if (r.bytes !== counted.get(p)) problems.push(`${p}: counted ${counted.get(p)} B, the server sent ${r.bytes} B`);
  }
  return problems;
}

/**
 * Records every finished request of a browser context, page and dedicated workers alike
 * (playwright attaches to workers), keeping each body. DevTools evicts bodies larger than
 * its buffer (our wasm): those are fetched again from the local static server, and must
 * have the size the browser received.
 */
function byteCounter(context) {
  const entries = [];
  context.on('requestfinished', (req) => {
    entries.push((async () => {
      const response = await req.response();
      const body = response ? await response.body().catch(() => null) : null;
      return { req, url: req.url(), path: new URL(req.url()).pathname, start: req.timing().startTime, status: response ? response.status() : 0, body };
    })().catch(() => null)); // the context closed while it finished: after the run, not counted
  });
  return {
    /**
     * Distinct URLs whose request started at or before `untilEpochMs`, with raw (body),
     * gzip -9 and brotli 11 sizes and how often each was loaded. Call before the context closes.
     */
    async files(untilEpochMs = Infinity) {
      const byUrl = new Map();
      for (const e of await Promise.all(entries)) {
        if (!e || e.start > untilEpochMs) continue;
        const known = byUrl.get(e.url);
        if (known) {
          known.loads += 1;
          continue;
        }
        let body = e.body;
        const refetched = !body;
        if (!body) {
          const sizes = await e.req.sizes().catch(() => null);
          const r = await fetch(e.url, { headers: EXTRA_HEADERS });
          body = Buffer.from(await r.arrayBuffer());
          if (!sizes || sizes.responseBodySize !== body.length) {
            throw new Error(`${e.url}: DevTools kept no body and the browser received ${sizes ? sizes.responseBodySize : '?'} B, the server now sends ${body.length} B`);
          }
        }
        byUrl.set(e.url, { path: e.path, status: e.status, raw: body.length, gzip: gzipSize(body), brotli: brotliSize(body), refetched, loads: 1 });
      }
      return [...byUrl.values()];
    },
  };
}

/**
 * Counts response bodies the way the page-level rows do, on a page whose module worker
 * imports a module and fetches a file itself: the counter must see both.
 */
async function selfCheck(browser, srv) {
  const errors = [];
  const { context, page, csp } = await newPage(browser, errors, 'self-check');
  const counter = byteCounter(context);
  try {
    const since = srv.requests.length;
    await page.goto(`${srv.origin}/selfcheck/index.html`);
    const result = await withTimeout(page.waitForFunction(() => window.workerResult).then((h) => h.jsonValue()), 20_000, 'the self-check worker')
      .catch((e) => { throw new Error(`${e.message}\n  ${errors.join('\n  ')}`); });
    checkCsp(csp);
    if (result.error) throw new Error(`self-check worker: ${result.error}`);
    const want = {
      '/selfcheck/worker.mjs': fs.statSync(path.join(SITE, 'selfcheck', 'worker.mjs')).size,
      '/selfcheck/dep.mjs': fs.statSync(path.join(SITE, 'selfcheck', 'dep.mjs')).size,
      '/selfcheck/blob.bin': result.bytes,
    };
    const files = await counter.files();
    const seen = new Map(files.map((f) => [f.path, f.raw]));
    const problems = checkServed(srv.requests.slice(since), files);
    for (const [p, size] of Object.entries(want)) {
      const got = seen.get(p);
      if (got !== size) problems.push(`${p}: counted ${got === undefined ? 'nothing' : got}, served ${size}`);
    }
    if (problems.length) throw new Error(`the byte counter misses worker requests or the server compressed:\n  ${problems.join('\n  ')}`);
    return `a module worker's import and fetch were both counted with their exact sizes (${Object.keys(want).length} files), `
      + 'each sent uncompressed with the size counted';
  } finally {
    await context.close();
  }
}

// ---------------------------------------------------------------- micro-benchmarks

async function micro(browser, origin, manifest, opts) {
  const errors = [];
  const { context, page, csp } = await newPage(browser, errors, 'micro');
  await page.goto(`${origin}/micro.html`);
  await withTimeout(page.waitForFunction(() => window.benchReady === true), 60_000, 'micro page to load');
  const info = await withTimeout(page.evaluate((m) => window.bench.setup(m), manifest), 180_000, 'loading both engines and inputs')
    .catch((e) => { throw new Error(`${e.message}\n  ${errors.join('\n  ')}`); });
  checkCsp(csp);
  log(`micro page ready: ${JSON.stringify(info)}`);
  const fa = info.faceapi;
  if (fa.backend !== 'wasm' || fa.wasmSimd !== true || fa.wasmMultithread !== false) {
    throw new Error(`face-api is not on the single-threaded SIMD wasm backend: ${JSON.stringify(fa)}`);
  }
  const ours = info.ours;
  const ev = (fn, arg, what) => withTimeout(page.evaluate(fn, arg), 600_000, what);

  // Both engines must answer alike, or the rows would compare different work.
  const answers = await ev(() => window.bench.answers(), undefined, 'answers');
  const problems = [];
  let maxHappyDiff = 0;
  answers.ours.crops.forEach((c, i) => {
    const d = Math.abs(c.happy - answers.faceapi.crops[i].happy);
    maxHappyDiff = Math.max(maxHappyDiff, d);
    if (!(d <= 0.02)) problems.push(`${c.name}: happy ${c.happy} vs face-api ${answers.faceapi.crops[i].happy}`);
  });
  answers.ours.faces.forEach((f, i) => {
    const g = answers.faceapi.faces[i];
    if (f.analyze !== g.analyze) problems.push(`${f.name} @${f.size}: ${f.analyze} faces vs face-api ${g.analyze}`);
    if (ours.hasDetect && f.detect !== null && f.detect !== g.detect) problems.push(`${f.name} @${f.size}: detect() found ${f.detect} faces vs face-api ${g.detect}`);
  });
  if (problems.length) throw new Error(`the engines disagree on the benchmark inputs:\n  ${problems.join('\n  ')}`);
  const faceCounts = answers.faceapi.faces.filter((f) => f.size === 224).map((f) => `${f.name}: ${f.analyze}`).join(', ');
  log(`answers agree (max |happy diff| ${maxHappyDiff.toExponential(1)}; faces at 224: ${faceCounts})`);

  const tensorsBefore = await ev(() => window.bench.tensors(), undefined, 'tensor count');

  // Each row: the page alternates the engines call by call; the calls come in chunks only
  // to keep each evaluate short (and, for the pipeline, one chunk per scene).
  const chunkSizes = (n, k) => Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0)).filter((x) => x > 0);
  async function row(label, call, chunks = MICRO_CHUNKS, extra = {}) {
    const samples = { ours: [], faceapi: [] };
    let offset = 0;
    for (const [k, n] of chunkSizes(opts.calls, chunks).entries()) {
      const r = await ev(call, { ...extra, n, warmup: k === 0 ? opts.warmup : 0, offset, chunk: k }, label);
      for (const engine of Object.keys(samples)) samples[engine].push(...(Array.isArray(r[engine]) ? r[engine] : [r[engine]]));
      offset += n;
    }
    const flat = (engine) => samples[engine].flatMap((r) => (typeof r === 'number' ? [r] : r.ms));
    const oursMs = flat('ours');
    const faceapiMs = flat('faceapi');
    // Each of our calls over the face-api call beside it: a check on the ratio of medians.
    const pairRatio = median(oursMs.map((t, i) => t / faceapiMs[i]));
    log(`${label}: ours ${median(oursMs).toFixed(1)} ms, face-api ${median(faceapiMs).toFixed(1)} ms (medians); `
      + `ratio ${(median(oursMs) / median(faceapiMs)).toFixed(3)}, median paired ratio ${pairRatio.toFixed(3)}`);
    return { ours: samples.ours, faceapi: samples.faceapi, oursMs, faceapiMs, pairRatio };
  }

  const results = {};
  results.crop = await row('(a) expression net', ({ n, warmup, offset }) => window.bench.crop(n, warmup, offset));
  results.cropMirrored = await row("(a') classifyFace, mirror averaged", ({ n, warmup, offset }) => window.bench.cropMirrored(n, warmup, offset));
  for (const size of DETECTOR_SIZES) {
    results[`det${size}`] = await row(`(b) detector ${size}`, ({ n, warmup, offset, size }) => window.bench.detector(size, n, warmup, offset), MICRO_CHUNKS, { size });
  }
  // Pipelines keep state (our tracker) across calls: one pipeline per engine, one chunk per scene.
  await ev(() => window.bench.startPipeline(), undefined, 'start pipeline');
  results.pipeline = await row('(c) per-frame pipeline', ({ n, warmup, chunk }) => window.bench.pipeline(chunk, n, warmup), manifest.frames.length);
  if (ours.hasTracker) {
    results.analyze224 = await row("(c') detect + expressions every frame", ({ n, warmup, offset }) => window.bench.analyze(224, n, warmup, offset));
  }
  const tensors = { before: tensorsBefore, after: await ev(() => window.bench.tensors(), undefined, 'tensor count') };

  await context.close();
  checkCsp(csp);
  if (errors.length) log(`micro page errors:\n  ${errors.join('\n  ')}`);
  return { results, info, maxHappyDiff, faceCounts, tensors, errors };
}

// ---------------------------------------------------------------- page-level runs

/**
 * CPU time of the page's main thread and its dedicated workers between the probe's two
 * marks, from a Chromium trace: the sum of the top-level tasks' thread CPU time (tdur),
 * a task crossing a mark prorated by its overlap. The page's renderer is the process
 * whose main thread recorded the marks. Returns ms of CPU per challenge second.
 */
export function cpuFromTrace(traceJson) {
  const parsed = JSON.parse(traceJson);
  const events = Array.isArray(parsed) ? parsed : parsed.traceEvents;
  const marks = {};
  for (const e of events) {
    if (CHALLENGE_MARKS.includes(e.name) && typeof e.cat === 'string' && e.cat.includes('blink.user_timing')) marks[e.name] = e;
  }
  const [start, end] = CHALLENGE_MARKS.map((m) => marks[m]);
  if (!start || !end || !(end.ts > start.ts)) throw new Error(`the trace lacks the challenge marks (${Object.keys(marks).join(', ') || 'none'})`);
  const pid = start.pid;
  const names = new Map();
  for (const e of events) if (e.ph === 'M' && e.name === 'thread_name' && e.pid === pid) names.set(e.tid, e.args?.name ?? '');
  const byThread = new Map();
  for (const e of events) {
    if (e.pid !== pid || e.ph !== 'X' || e.cat !== 'toplevel' || !(e.dur > 0)) continue;
    if (!byThread.has(e.tid)) byThread.set(e.tid, []);
    byThread.get(e.tid).push(e);
  }
  const [t0, t1] = [start.ts, end.ts];
  const cpu = { main: 0, worker: 0, all: 0, missingThreadTime: 0 };
  for (const [tid, list] of byThread) {
    list.sort((a, b) => a.ts - b.ts);
    let until = -Infinity;
    let sum = 0;
    for (const e of list) {
      if (e.ts < until) continue; // nested in the previous top-level task
      until = e.ts + e.dur;
      const overlap = Math.min(t1, e.ts + e.dur) - Math.max(t0, e.ts);
      if (overlap <= 0) continue;
      // A few events (short I/O waits) carry no thread time: counted at their wall time.
      if (e.tdur === undefined) cpu.missingThreadTime += overlap;
      sum += (e.tdur ?? e.dur) * (overlap / e.dur);
    }
    const name = names.get(tid) ?? '';
    if (tid === start.tid) cpu.main += sum;
    else if (/^DedicatedWorker/.test(name)) cpu.worker += sum;
    cpu.all += sum;
  }
  const seconds = (t1 - t0) / 1e6;
  const perS = (us) => us / 1000 / seconds;
  if (cpu.missingThreadTime > 0.02 * cpu.all) throw new Error(`trace events without thread time (tdur) make ${(100 * cpu.missingThreadTime / cpu.all).toFixed(0)}% of the CPU counted`);
  return { mainMsPerS: perS(cpu.main), workerMsPerS: perS(cpu.worker), totalMsPerS: perS(cpu.main + cpu.worker), rendererMsPerS: perS(cpu.all), seconds };
}

/**
 * One cold run of a challenge page in a fresh browser context: navigate, let the probe
 * click Start, wait for the verdict. Returns the timings, bytes and long tasks; with
 * `trace`, the CPU per challenge second; with `throttle`, the page's main thread runs that
 * many times slower (Chromium throttles only a page's main thread: a worker target answers
 * "Operation is only supported for pages, not workers"); with `marker`, the smile delay.
 */
async function challengeRun(browser, { kind, url, srv }, opts, { trace = false, throttle = 1, marker = false } = {}) {
  const errors = [];
  const { context, page, csp } = await newPage(browser, errors, kind, { permissions: ['camera'], viewport: { width: 1000, height: 800 } });
  const counter = byteCounter(context);
  let resolveReport;
  const reported = new Promise((resolve) => { resolveReport = resolve; });
  let tracing = false;
  try {
    await context.exposeBinding('__benchReport', (_source, data) => resolveReport(data));
    if (marker) await context.addInitScript({ content: 'window.__benchMarker = true;' });
    await context.addInitScript({ path: PROBE });
    if (throttle > 1) {
      const cdp = await context.newCDPSession(page);
      await cdp.send('Emulation.setCPUThrottlingRate', { rate: throttle });
    }
    if (trace) {
      await browser.startTracing(undefined, { categories: TRACE_CATEGORIES });
      tracing = true;
    }
    const navStartEpoch = Date.now();
    await page.goto(url, { waitUntil: 'commit', timeout: 60_000 });
    const data = await withTimeout(reported, 90_000 * throttle + opts.duration * 1000, `${kind}: the challenge to end (phase result)`)
      .catch((e) => { throw new Error(`${e.message}\n  ${errors.join('\n  ')}`); });
    let cpu = null;
    if (tracing) {
      tracing = false;
      cpu = cpuFromTrace((await browser.stopTracing()).toString('utf8'));
    }
    checkCsp(csp);
    if (data.endPhase !== 'result') throw new Error(`${kind}: the page ended in phase ${data.endPhase}\n  ${errors.join('\n  ')}`);
    for (const e of data.errors) errors.push(`${kind}: ${e}`);
    if (data.dataset.reason === 'error' || !(Number(data.dataset.framesAnalysed) > 0)) {
      throw new Error(`${kind}: the challenge failed (${JSON.stringify(data.dataset)})\n  ${errors.join('\n  ')}`);
    }

    const firstSource = data.firstMark !== null ? 'mark' : data.firstOverlay !== null ? 'overlay' : null;
    if (!firstSource) throw new Error(`${kind}: no analysed frame seen (no '${FIRST_MARK}' mark, no #overlay clear)`);
    const first = firstSource === 'mark' ? data.firstMark : data.firstOverlay;
    const firstEpoch = data.timeOrigin + first;

    // Bytes: every distinct URL whose request started before the first verdict.
    const files = await withTimeout(counter.files(firstEpoch), 60_000, `${kind}: response bodies`);
    // Cross-check with what the server sent in that window: nothing may be missing, and
    // every body went out uncompressed with the size counted.
    const seen = new Set(files.map((f) => f.path));
    const records = srv.requests.filter((r) => r.time >= navStartEpoch - 50 && r.time <= firstEpoch);
    const unseen = records.map((r) => r.url.split('?')[0]).filter((p) => !seen.has(p));
    if (unseen.length) errors.push(`${kind}: served but not counted: ${unseen.join(', ')}`);
    const mismatched = checkServed(records, files);
    if (mismatched.length) throw new Error(`${kind}: the byte counter disagrees with the server:\n  ${mismatched.join('\n  ')}`);

    const [cs, ce] = [data.challengeStart, data.challengeEnd];
    const inChallenge = data.longtasks.filter(([start]) => start >= cs && start <= ce);
    const beforeChallenge = data.longtasks.filter(([start]) => start < cs);
    let smile = null;
    if (marker) {
      // The switch: the first neutral-to-smile frame presented after the page settled.
      const verdictAt = data.phases.find(([p]) => p === 'result')?.[1];
      const switchAt = data.markerLight.find((t) => t >= cs + SWITCH_AFTER_START_MS);
      smile = {
        reason: data.dataset.reason || '',
        switchAfterStartMs: switchAt === undefined ? null : switchAt - cs,
        delayMs: switchAt === undefined || verdictAt === undefined || verdictAt < switchAt ? null : verdictAt - switchAt,
        markerFrames: data.markerFrames,
        switches: data.markerLight.length,
      };
    }
    return {
      firstMs: first,
      firstSource,
      startEnabledMs: data.startEnabled,
      clickedMs: data.clicked,
      challengeMs: ce - cs,
      rawBytes: files.reduce((a, f) => a + f.raw, 0),
      gzipBytes: files.reduce((a, f) => a + f.gzip, 0),
      brotliBytes: files.reduce((a, f) => a + f.brotli, 0),
      files,
      longCount: inChallenge.length,
      longMax: inChallenge.reduce((a, [, d]) => Math.max(a, d), 0),
      // When each one started, in ms after the challenge began: tells start-up work from steady state.
      longAt: inChallenge.map(([start, d]) => `+${(start - cs).toFixed(0)} (${d.toFixed(0)} ms)`),
      loadLongCount: beforeChallenge.length,
      loadLongMax: beforeChallenge.reduce((a, [, d]) => Math.max(a, d), 0),
      fps: Number(data.dataset.analysisFps),
      frames: Number(data.dataset.framesAnalysed),
      outcome: { notsmiling: data.dataset.notsmiling, reason: data.dataset.reason || '' },
      dataset: data.dataset,
      cpu,
      smile,
      errors,
    };
  } finally {
    if (tracing) await browser.stopTracing().catch(() => {});
    await context.close().catch(() => {});
  }
}

/** Our page's server with the harness config, and `analysisFps` when given. */
function oursServer(opts, analysisFps, duration = opts.duration) {
  return startServer({
    root: opts.www,
    config: (origin) => ({ returnUrl: origin, duration, ...(analysisFps ? { analysisFps } : {}) }),
  });
}

/**
 * Runs each target `opts.runs` times in turn (the order rotating each round, so that load
 * on the machine hits them alike). `variants`: {key: {target, options}}.
 */
async function rounds(browser, variants, opts, label) {
  const keys = Object.keys(variants);
  const runs = Object.fromEntries(keys.map((k) => [k, []]));
  for (let i = 0; i < opts.runs; i++) {
    const order = keys.map((_, j) => keys[(i + j) % keys.length]);
    for (const key of order) {
      const { target, options } = variants[key];
      const r = await challengeRun(browser, target, opts, options);
      runs[key].push(r);
      log(`${label} ${i + 1}/${opts.runs} ${key}: first verdict ${r.firstMs.toFixed(0)} ms, ${thousands(r.rawBytes)} B, `
        + `${r.longCount} long tasks${r.longCount ? ` at ${r.longAt.join(', ')}` : ''}, ${r.fps} fps, ${r.frames} frames, outcome ${JSON.stringify(r.outcome)}`
        + (r.cpu ? `, CPU ms/s main ${r.cpu.mainMsPerS.toFixed(0)} + worker ${r.cpu.workerMsPerS.toFixed(0)} = ${r.cpu.totalMsPerS.toFixed(0)} (renderer ${r.cpu.rendererMsPerS.toFixed(0)})` : '')
        + (r.smile ? `, smile switch at +${r.smile.switchAfterStartMs?.toFixed(0)} ms, verdict after ${r.smile.delayMs?.toFixed(0)} ms (${r.smile.reason})` : ''));
      for (const e of r.errors) log(`  ${e}`);
    }
  }
  return runs;
}

function checkPeerSimd(list) {
  const simd = list.map((r) => `${r.dataset.wasmSimd}/${r.dataset.wasmMultithread}`);
  if (simd.some((s) => s !== 'true/false')) throw new Error(`the face-api page is not on single-threaded SIMD wasm: ${simd.join(', ')}`);
}

/**
 * The page rows on the neutral camera: ours at the default rate and flat out, face-api.js,
 * all traced for CPU; then, unless skipped, ours and face-api.js with the CPU throttled.
 */
async function pages(browser, siteSrv, opts) {
  const oursSrv = await oursServer(opts, opts.fps);
  const flatSrv = await oursServer(opts, FLAT_OUT_FPS);
  try {
    const ours = { kind: 'ours', url: `${oursSrv.origin}/?state=bench`, srv: oursSrv };
    const flat = { kind: 'ours flat out', url: `${flatSrv.origin}/?state=bench`, srv: flatSrv };
    const faceapi = { kind: 'faceapi', url: `${siteSrv.origin}/peer.html?duration=${opts.duration}`, srv: siteSrv };
    const runs = await rounds(browser, {
      ours: { target: ours, options: { trace: true } },
      flat: { target: flat, options: { trace: true } },
      faceapi: { target: faceapi, options: { trace: true } },
    }, opts, 'page run');
    checkPeerSimd(runs.faceapi);
    if (!opts.skip.has('throttled')) {
      const slow = await rounds(browser, {
        ours: { target: ours, options: { throttle: THROTTLE } },
        faceapi: { target: faceapi, options: { throttle: THROTTLE } },
      }, opts, `${THROTTLE}x throttled run`);
      runs.oursSlow = slow.ours;
      runs.faceapiSlow = slow.faceapi;
    }
    return runs;
  } finally {
    await oursSrv.close();
    await flatSrv.close();
  }
}

/**
 * The smile-delay clip, target/bench/switch.y4m: the e2e tests' neutral scene for
 * SWITCH_NEUTRAL_S, then their smiling scene for SWITCH_SMILE_S, 30 frames a second, with
 * the same one-pixel sway; a 16x16 square at (8, 8) is dark on neutral frames and light on
 * smiling ones, which the probe reads from the page's <video>.
 */
async function switchClip() {
  const y4m = await import(pathToFileURL(path.join(REPO, 'tests', 'e2e', 'y4m.mjs')).href);
  const FPS = 30;
  const part = (crop, seconds, level) => y4m.frames(y4m.faceScene(path.join(FIXTURES, 'crops', crop)), seconds * FPS).map((f) => {
    for (let y = 8; y < 24; y++) {
      for (let x = 8; x < 24; x++) {
        const o = (y * f.width + x) * 4;
        f.data[o] = f.data[o + 1] = f.data[o + 2] = level;
      }
    }
    return f;
  });
  const file = path.join(REPO, 'target', 'bench', 'switch.y4m');
  return y4m.writeY4m(file, [...part('neutral_1.png', SWITCH_NEUTRAL_S, 16), ...part('smile_1.png', SWITCH_SMILE_S, 240)], FPS);
}

/**
 * Smile delay: in a browser whose fake camera plays the switch clip, the time from the
 * first smiling frame the page's <video> presents to the verdict (data-phase result), for
 * ours at the default rate and flat out and face-api.js's prototype flow; then, unless
 * skipped, ours and face-api.js throttled.
 */
async function smileRuns(siteSrv, opts) {
  const clip = await switchClip();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [...BROWSER_ARGS, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${clip}`],
  });
  // Long enough for a second switch when the first came too early after Start.
  const duration = 20;
  const o = { ...opts, duration };
  const oursSrv = await oursServer(opts, opts.fps, duration);
  const flatSrv = await oursServer(opts, FLAT_OUT_FPS, duration);
  try {
    const ours = { kind: 'ours', url: `${oursSrv.origin}/?state=bench`, srv: oursSrv };
    const flat = { kind: 'ours flat out', url: `${flatSrv.origin}/?state=bench`, srv: flatSrv };
    const faceapi = { kind: 'faceapi', url: `${siteSrv.origin}/peer.html?duration=${duration}`, srv: siteSrv };
    const runs = await rounds(browser, {
      ours: { target: ours, options: { marker: true } },
      flat: { target: flat, options: { marker: true } },
      faceapi: { target: faceapi, options: { marker: true } },
    }, o, 'smile run');
    if (!opts.skip.has('throttled')) {
      const slow = await rounds(browser, {
        ours: { target: ours, options: { marker: true, throttle: THROTTLE } },
        faceapi: { target: faceapi, options: { marker: true, throttle: THROTTLE } },
      }, o, `${THROTTLE}x throttled smile run`);
      runs.oursSlow = slow.ours;
      runs.faceapiSlow = slow.faceapi;
    }
    for (const [key, list] of Object.entries(runs)) {
      const bad = list.filter((r) => r.smile.reason !== 'smiled' || r.smile.delayMs === null);
      if (bad.length) throw new Error(`smile runs (${key}): no verdict after a counted switch in ${bad.length} of ${list.length}: ${JSON.stringify(bad.map((r) => r.smile))}`);
    }
    return runs;
  } finally {
    await oursSrv.close();
    await flatSrv.close();
    await browser.close().catch(() => {});
  }
}

// ---------------------------------------------------------------- the table

function fmtNumber(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return '-';
  if (unit === 'B') return thousands(v);
  if (unit === 'count') return Number.isInteger(v) ? String(v) : v.toFixed(1);
  return v.toFixed(1);
}

/**
 * A table row from per-run or per-call samples. `goal`: {ratioMax} (ours/face-api median
 * ratio at most this), {zero: true} (ours 0 in every sample), {min} / {max} (ours median at
 * least / at most).
 */
function tableRow(label, unit, ours, peer, goal, { spread = true } = {}) {
  const oMed = ours ? median(ours) : null;
  const pMed = peer ? median(peer) : null;
  const ratio = oMed !== null && pMed ? oMed / pMed : null;
  let goalText = '-';
  let met = '-';
  if (goal?.ratioMax !== undefined) {
    goalText = `<= ${goal.ratioMax}x`;
    if (ratio !== null) met = ratio <= goal.ratioMax ? 'yes' : 'no';
  } else if (goal?.zero) {
    goalText = '0 (ours)';
    if (ours) met = ours.every((x) => x === 0) ? 'yes' : 'no';
  } else if (goal?.max !== undefined) {
    goalText = goal.text ?? `<= ${goal.max} (ours)`;
    if (oMed !== null) met = oMed <= goal.max ? 'yes' : 'no';
  } else if (goal?.min !== undefined) {
    goalText = `>= ${goal.min} (ours)`;
    if (oMed !== null) met = oMed >= goal.min ? 'yes' : 'no';
  }
  return [
    label,
    fmtNumber(oMed, unit),
    spread && ours ? fmtNumber(p90(ours), unit) : '-',
    fmtNumber(pMed, unit),
    spread && peer ? fmtNumber(p90(peer), unit) : '-',
    ratio === null ? '-' : `${ratio.toFixed(2)}x`,
    goalText,
    met,
  ];
}

function markdownTable(rows) {
  const head = ['row', 'ours median', 'ours p90', 'face-api median', 'face-api p90', 'ours / face-api', 'goal', 'met?'];
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

function build(microResult, runs, ctx) {
  const rows = [];
  const notes = [];
  if (microResult) {
    const { results: r, info } = microResult;
    const n = r.crop.oursMs.length;
    rows.push(tableRow('1a. expression net, one 112x112 crop, one run (ms)', 'ms', r.crop.oursMs, r.crop.faceapiMs, { ratioMax: 0.5 }));
    if (r.cropMirrored) {
      rows.push(tableRow("1a'. classifyFace on a crop, ours mirror-averaged: two runs (ms)", 'ms', r.cropMirrored.oursMs, r.cropMirrored.faceapiMs, null));
    }
    for (const size of DETECTOR_SIZES) {
      const what = info.ours.hasDetect ? '' : ' [ours: analyze() placeholder]';
      rows.push(tableRow(`1b. detector at ${size}, 640x480 frame (ms)${what}`, 'ms', r[`det${size}`].oursMs, r[`det${size}`].faceapiMs, { ratioMax: 0.7 }));
    }
    const pipe = r.pipeline;
    const flags = pipe.ours.flatMap((c) => c.detected);
    const pipeMs = pipe.ours.flatMap((c) => c.ms);
    const what = info.ours.hasTracker ? 'FaceTracker.step' : 'analyze() placeholder';
    rows.push(tableRow(`1c. per-frame pipeline, 640x480, 224 (ms) [ours: ${what}]`, 'ms', pipe.oursMs, pipe.faceapiMs, { ratioMax: 0.7 }));
    if (r.analyze224) {
      rows.push(tableRow("1c'. detect + every face's expressions each frame, 224 (ms) [ours: analyze()]", 'ms', r.analyze224.oursMs, r.analyze224.faceapiMs, null));
    }
    const detectMs = pipeMs.filter((_, i) => flags[i]);
    const trackedMs = pipeMs.filter((_, i) => !flags[i]);
    notes.push(`Micro-benchmarks (1a-1c): ${n} timed calls per engine and row after ${ctx.opts.warmup} warm-up calls, on the main thread of a bench page, `
      + `each call timed with performance.now() around the awaited call including reading its result; both engines live in one page `
      + 'and their calls alternate one by one (ours first on even calls, face-api first on odd ones), so that background load and the '
      + `machine's fast and slow spells hit both alike; as a check on 1a's ratio of medians, the median of its ${n} paired ratios (each of our calls `
      + `over the face-api call beside it) is ${r.crop.pairRatio.toFixed(2)}x. Same pixels for both: the fixture PNGs decoded once in Node to raw RGBA; ours gets the bytes `
      + `(the copy into wasm memory is inside the timing), face-api an int32 tensor of the same RGB values made once outside the timing `
      + `(its tensor path: padToSquare + resizeBilinear, no canvas). 1a cycles through the ${ctx.manifest.crops.length} crops in tests/fixtures/crops, `
      + 'ours classifyFace(rgba, w, h, {mirror: false}) (one run of the expression net, the smile of the crop as it is, as on video frames), '
      + "face-api predictExpressions(tensor); 1a' is the same with our classifyFace's default, which also scores the crop's mirror image and "
      + 'averages the two smile scores (two runs; face-api has no such option, so its column repeats its one-run call and the ratio has no goal); '
      + `1b alternates the 640x480 frames in tests/fixtures/frames (${microResult.faceCounts} faces at 224); face-api's detector call is `
      + `detectAllFaces(tensor, TinyFaceDetectorOptions({inputSize, scoreThreshold: 0.5})).`);
    if (!info.ours.hasDetect) notes.push('1b ours: this build has no FaceAnalyzer.detect(), so analyze() (detector + expressions of every face) stands in: a placeholder that overstates our detector time.');
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    notes.push(`1c: each 640x480 frame's six copies shifted by 0/1/2/1/0/-1 rows (the fake-camera sway of tests/e2e/y4m.mjs), played in a loop, `
      + `${pipe.oursMs.length} frames per engine split into ${ctx.manifest.frames.length} scenes (one scene change). face-api: `
      + `detectAllFaces(tensor, TinyFaceDetectorOptions({inputSize: 224})).withFaceExpressions() every frame. `
      + (info.ours.hasTracker
        ? 'Ours: one FaceTracker({inputSize: 224}) stepping through the same frames, classifying the largest face only (the one the page judges; '
          + `face-api classifies every face): ${detectMs.length} detect frames `
          + `(median ${detectMs.length ? median(detectMs).toFixed(1) : '-'} ms) and ${trackedMs.length} tracked frames (median ${trackedMs.length ? median(trackedMs).toFixed(1) : '-'} ms) of ${flags.length}. `
          + `Mean per frame, which sets the frame rate: ours ${mean(pipe.oursMs).toFixed(1)} ms, face-api ${mean(pipe.faceapiMs).toFixed(1)} ms. `
          + "1c' is ours detecting every frame (analyze at 224) against the same face-api call, without tracking."
        : 'Ours: this build has no FaceTracker, so analyze() at 224 on every frame stands in (a placeholder: every frame a detect frame).'));
    notes.push(`Both engines answered alike on the inputs (max |happy difference| on the crops ${microResult.maxHappyDiff.toExponential(1)}, equal face counts at 224/320/416); `
      + `face-api: tfjs ${info.faceapi.tfjs}, backend ${info.faceapi.backend}, WASM_HAS_SIMD_SUPPORT=${info.faceapi.wasmSimd}, `
      + `WASM_HAS_MULTITHREAD_SUPPORT=${info.faceapi.wasmMultithread}, crossOriginIsolated=${info.faceapi.crossOriginIsolated} (no COOP/COEP: one thread), `
      + `tfjs tensors alive before the timed calls ${microResult.tensors.before}, after ${microResult.tensors.after}`
      + `${microResult.tensors.before === microResult.tensors.after ? ' (no leak)' : ' (WARNING: face-api leaked tensors)'}.`);
  }
  if (runs) {
    const pick = (kind, key) => runs[kind].map((r) => r[key]);
    rows.push(tableRow('2. bytes before the first verdict, raw', 'B', pick('ours', 'rawBytes'), pick('faceapi', 'rawBytes'), { ratioMax: 1 }, { spread: false }));
    rows.push(tableRow('2. bytes before the first verdict, gzip -9', 'B', pick('ours', 'gzipBytes'), pick('faceapi', 'gzipBytes'), { ratioMax: 1 }, { spread: false }));
    rows.push(tableRow('2. bytes before the first verdict, brotli 11', 'B', pick('ours', 'brotliBytes'), pick('faceapi', 'brotliBytes'), { ratioMax: 1 }, { spread: false }));
    rows.push(tableRow(`3. navigation to first verdict, cold (ms), ${ctx.opts.runs} fresh contexts`, 'ms', pick('ours', 'firstMs'), pick('faceapi', 'firstMs'), { ratioMax: 1 }));
    rows.push(tableRow('3. of which: navigation to Start enabled (ms)', 'ms', pick('ours', 'startEnabledMs'), pick('faceapi', 'startEnabledMs'), null));
    rows.push(tableRow(`4. main-thread long tasks > 50 ms in the ${ctx.opts.duration} s challenge (count)`, 'count', pick('ours', 'longCount'), pick('faceapi', 'longCount'), { zero: true }));
    rows.push(tableRow('4. longest of those long tasks (ms)', 'ms', pick('ours', 'longMax'), pick('faceapi', 'longMax'), null));
    rows.push(tableRow('5. frames analysed per second in the challenge (ours: default analysisFps)', 'fps', pick('ours', 'fps'), pick('faceapi', 'fps'), null));
    rows.push(tableRow(`5. frames analysed per second, ours flat out (analysisFps ${FLAT_OUT_FPS})`, 'fps', pick('flat', 'fps'), pick('faceapi', 'fps'), { min: 15 }));
    const cpu = (kind, key) => runs[kind].map((r) => r.cpu[key]);
    rows.push(tableRow('6. CPU per challenge second, main thread + worker (ms/s), ours at the default rate', 'ms', cpu('ours', 'totalMsPerS'), cpu('faceapi', 'totalMsPerS'), { max: CPU_GOAL_MS_PER_S }));
    rows.push(tableRow('6. of which: our worker (ms/s)', 'ms', cpu('ours', 'workerMsPerS'), cpu('faceapi', 'workerMsPerS'), null));
    rows.push(tableRow('6. of which: the main thread (ms/s)', 'ms', cpu('ours', 'mainMsPerS'), cpu('faceapi', 'mainMsPerS'), null));
    rows.push(tableRow(`6. CPU per challenge second, main thread + worker (ms/s), ours flat out (analysisFps ${FLAT_OUT_FPS})`, 'ms', cpu('flat', 'totalMsPerS'), cpu('faceapi', 'totalMsPerS'), null));
    rows.push(tableRow('6. the whole renderer process, all threads (ms/s), ours at the default rate', 'ms', cpu('ours', 'rendererMsPerS'), cpu('faceapi', 'rendererMsPerS'), null));

    const list = (kind) => runs[kind][0].files.map((f) => `${f.path} ${thousands(f.raw)}/${thousands(f.gzip)}/${thousands(f.brotli)}${f.loads > 1 ? ` (loaded ${f.loads}x)` : ''}`).join(', ');
    const repeated = ['ours', 'faceapi'].some((k) => runs[k][0].files.some((f) => f.loads > 1));
    const refetched = [...new Set(['ours', 'faceapi'].flatMap((k) => runs[k][0].files.filter((f) => f.refetched).map((f) => f.path)))];
    const sources = [...new Set(pick('ours', 'firstSource'))];
    notes.push(`Page rows (2-5): ${ctx.opts.runs} runs per page, each in a fresh browser context (empty HTTP cache), `
      + 'the two pages alternating. Both are served by the verifier server (server/, demo mode) through the tools/serve.mjs test harness, with the same '
      + "headers, its Content-Security-Policy included (default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; no 'unsafe-eval', "
      + 'no inline script or style): face-api.js and tfjs\'s wasm backend run under it unchanged, and a policy violation on any page fails the run. '
      + `Ours: www/index.html (?state=bench) with the harness's config {returnUrl: the server, duration: ${ctx.opts.duration}}, analysing frames its own way. face-api.js: bench/pages/peer.html, `
      + 'the first prototype\'s flow: load face-api 1.7.15 + tfjs wasm (SIMD, one thread) and both models, Start, getUserMedia (640x480), then '
      + 'detectAllFaces(video, TinyFaceDetectorOptions({inputSize: 224})).withFaceExpressions() on the 640x480 video, one call per animation frame, '
      + `for ${ctx.opts.duration} s. Both get Chromium's fake camera playing target/e2e/neutral.y4m (a neutral face, tests/e2e/helpers.mjs cameraFile).`);
    notes.push('Start: an init script (bench/probe.js) clicks #start, in a new task, as soon as it is enabled and visible, on both pages: no user delay is included. '
      + `First verdict = the first analysed camera frame: the '${FIRST_MARK}' performance mark (the peer page sets it too)`
      + (sources.includes('overlay') ? "; this build of our page sets no mark, so the probe takes the first clearRect of its #overlay canvas, which the page does right after each analysis" : '')
      + '. Row 3 is that time from navigation start (performance.timeOrigin).');
    notes.push('Bytes: every URL whose request started before the first verdict, as seen by playwright\'s context "requestfinished" events, which include the '
      + `requests of dedicated workers (self-check before the runs: ${ctx.selfCheck}); each run also checks that the server sent nothing the counter missed. `
      + 'Raw = body bytes as sent: the verifier server compresses (gzip/brotli) when asked, so every browser context, both pages alike, sends '
      + 'Accept-Encoding: identity, and each run checks that the server sent every counted URL uncompressed with the size counted. '
      + 'Gzip = each body compressed locally with gzip -9 (zlib level 9), summed; brotli = the same with brotli at quality 11 (Node\'s zlib). '
      + 'For our package assets these are the .gz and .br copies tools/package.mjs writes and the verifier server sends to a browser that takes them; '
      + 'the other files (our page\'s own, all of face-api.js\'s) it compresses on the fly at tower-http\'s default level, so for those the rows are a lower bound. Rows 3-5 are uncompressed loads over loopback (Accept-Encoding: identity), where '
      + 'on-the-fly compression would add CPU on both ends and save no transfer time. '
      + (repeated ? 'A URL loaded more than once counts once (a second load is a cache hit for a page with caching headers). ' : '')
      + (refetched.length ? `DevTools kept no copy of ${refetched.join(', ')} (too large): fetched again from the local server, checked against the size the browser received. ` : '')
      + `Ours (path raw/gzip/brotli): ${list('ours')}. face-api.js: ${list('faceapi')}.`);
    const oursOutcomes = runs.ours.map((r) => r.outcome.notsmiling === 'true' ? 'passed' : `failed (${r.outcome.reason || 'smiled'})`);
    notes.push(`Long tasks: PerformanceObserver({type: 'longtask', buffered: true}) installed before navigation; counted from data-phase=challenge to data-phase=result. `
      + `Before the challenge (loading, Start): ours median ${median(pick('ours', 'loadLongCount'))} long tasks (longest ${median(pick('ours', 'loadLongMax')).toFixed(0)} ms), `
      + `face-api ${median(pick('faceapi', 'loadLongCount'))} (longest ${median(pick('faceapi', 'loadLongMax')).toFixed(0)} ms). `
      + `fps = data-analysis-fps written by each page at the end (frames analysed / active challenge time); frames analysed, median: ours ${median(pick('ours', 'frames'))}, `
      + `face-api ${median(pick('faceapi', 'frames'))}. Our page's verdicts on the neutral face: ${oursOutcomes.join(', ')}.`);
  }
  if (runs) {
    const cpu = (kind, key) => median(runs[kind].map((r) => r.cpu[key]));
    notes.push(`CPU (rows 6): each page run above is traced (Chromium tracing, categories ${TRACE_CATEGORIES.join(', ')}); the probe marks `
      + `'${CHALLENGE_MARKS[0]}' when data-phase turns challenge and '${CHALLENGE_MARKS[1]}' at the verdict, and the CPU is the sum of the thread CPU time (tdur) `
      + 'of the top-level tasks between the marks (prorated at the edges), on the renderer\'s main thread (the marks\' thread) and its dedicated workers, '
      + 'per second between the marks. Thread time, not wall time: on a busy machine a task waiting for a core is not counted. '
      + `Medians: ours at the default rate main ${cpu('ours', 'mainMsPerS').toFixed(0)} + worker ${cpu('ours', 'workerMsPerS').toFixed(0)} ms/s, `
      + `flat out main ${cpu('flat', 'mainMsPerS').toFixed(0)} + worker ${cpu('flat', 'workerMsPerS').toFixed(0)} ms/s at ${median(runs.flat.map((r) => r.fps)).toFixed(1)} fps, `
      + `face-api.js main ${cpu('faceapi', 'mainMsPerS').toFixed(0)} ms/s (it has no worker). The goal is ${CPU_GOAL_MS_PER_S} ms/s, 20% of one core. `
      + 'The whole renderer row adds the compositor, media and I/O threads of the page\'s process (the video\'s decoding and display; not the GPU process or the camera\'s capture service).');
  }
  if (runs?.oursSlow) {
    const pick = (kind, key) => runs[kind].map((r) => r[key]);
    rows.push(tableRow(`3. ${THROTTLE}x CPU throttling: navigation to first verdict, cold (ms)`, 'ms', pick('oursSlow', 'firstMs'), pick('faceapiSlow', 'firstMs'), { ratioMax: 1 }));
    rows.push(tableRow(`4. ${THROTTLE}x CPU throttling: main-thread long tasks > 50 ms in the challenge (count)`, 'count', pick('oursSlow', 'longCount'), pick('faceapiSlow', 'longCount'), { zero: true }));
    rows.push(tableRow(`4. ${THROTTLE}x CPU throttling: longest of those long tasks (ms)`, 'ms', pick('oursSlow', 'longMax'), pick('faceapiSlow', 'longMax'), null));
    rows.push(tableRow(`5. ${THROTTLE}x CPU throttling: frames analysed per second (ours: default analysisFps)`, 'fps', pick('oursSlow', 'fps'), pick('faceapiSlow', 'fps'), null));
    notes.push(`${THROTTLE}x rows: the same page runs (neutral camera, fresh context, not traced) with CDP Emulation.setCPUThrottlingRate({rate: ${THROTTLE}}) on the page. `
      + 'Chromium throttles only the page\'s main thread: a dedicated worker\'s target refuses the command ("Operation is only supported for pages, not workers"), '
      + 'so face-api.js, which runs on the main thread, is slowed fully, and our worker is not slowed by the emulation (it only shares the cores with the throttled main thread, '
      + 'whose throttling spins). These rows show the main thread of a slow device; for our worker on one, scale our rows 6 and 1c by the device\'s slowdown. '
      + `Frames analysed, median: ours ${median(pick('oursSlow', 'frames'))}, face-api ${median(pick('faceapiSlow', 'frames'))}.`);
  }
  if (ctx.smile) {
    const sm = ctx.smile;
    const delay = (kind) => sm[kind].map((r) => r.smile.delayMs);
    // "Unchanged": the default rate's median within one camera frame (33 ms) of flat out's.
    const flatMedian = median(delay('flat'));
    rows.push(tableRow(`7. smile delay: smiling frame shown to verdict (ms), ${ctx.opts.runs} runs, ours at the default rate`, 'ms', delay('ours'), delay('faceapi'), { max: flatMedian + 33, text: '<= flat out + 33' }));
    rows.push(tableRow(`7. smile delay (ms), ours flat out (analysisFps ${FLAT_OUT_FPS})`, 'ms', delay('flat'), delay('faceapi'), { ratioMax: 1 }));
    if (sm.oursSlow) rows.push(tableRow(`7. ${THROTTLE}x CPU throttling: smile delay (ms), ours at the default rate`, 'ms', delay('oursSlow'), delay('faceapiSlow'), { ratioMax: 1 }));
    const list = (kind) => delay(kind).map((d) => d.toFixed(0)).join(', ');
    notes.push(`Smile delay (rows 7): a separate browser whose fake camera plays target/bench/switch.y4m: the neutral scene for ${SWITCH_NEUTRAL_S} s, then the smiling scene `
      + `(tests/fixtures/crops/smile_1.png) for ${SWITCH_SMILE_S} s, 30 frames a second, looped; a 16x16 square in the top-left corner is dark on neutral frames and light on smiling ones. `
      + 'The probe reads that square from every frame the page\'s <video> presents (requestVideoFrameCallback, a 1x1 drawImage), on both pages alike; the delay runs from the first light frame '
      + `presented at least ${SWITCH_AFTER_START_MS} ms after data-phase turned challenge to data-phase result (the verdict). Both pages need the smile held 300 ms: ours its verdict `
      + '(holdMs 300, score >= 0.5 on consecutive analysed frames), face-api.js\'s page the prototype\'s rule (the first frame with happy >= 0.5, held on every frame for 300 ms). '
      + `So 300 ms of every delay is the hold itself. Runs (ms): ours default ${list('ours')}; flat out ${list('flat')}; face-api.js ${list('faceapi')}`
      + (sm.oursSlow ? `; ${THROTTLE}x throttled: ours ${list('oursSlow')}, face-api.js ${list('faceapiSlow')}` : '') + '.');
  }
  return { rows, notes };
}

// ---------------------------------------------------------------- main

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    die(e.message);
  }
  checkInputs(opts);
  const watchdog = setTimeout(() => die(`not finished within ${GLOBAL_TIMEOUT_MS / 60000} min`), GLOBAL_TIMEOUT_MS);
  watchdog.unref();
  const t0 = Date.now();
  const host = machine();
  const loadBefore = os.loadavg();

  const manifest = buildSite(opts);
  const { cameraFile } = await import(pathToFileURL(path.join(REPO, 'tests', 'e2e', 'helpers.mjs')).href);
  const camera = await cameraFile('neutral');
  const siteSrv = await startServer({ root: SITE });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [...BROWSER_ARGS, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${camera}`],
  });
  let microResult = null;
  let runs = null;
  let selfCheckText = null;
  let smile = null;
  try {
    const chromiumVersion = browser.version();
    log(`Chromium ${chromiumVersion}, ${host.nproc} cores, ${host.model}`);
    if (!opts.skip.has('pages')) {
      selfCheckText = await selfCheck(browser, siteSrv);
      log(`byte counter self-check: ${selfCheckText}`);
    }
    // Pages first: a page that fails stops the run before the long micro-benchmarks.
    if (!opts.skip.has('pages')) runs = await pages(browser, siteSrv, opts);
    if (!opts.skip.has('smile')) smile = await smileRuns(siteSrv, opts);
    if (!opts.skip.has('micro')) microResult = await micro(browser, siteSrv.origin, manifest, opts);

    const engine = manifest.engine;
    const wasmBytes = fs.readFileSync(path.join(opts.www, engine.wasm));
    const wasm = `${engine.wasm} ${thousands(wasmBytes.length)} B (gzip -9 ${thousands(gzipSize(wasmBytes))}, brotli 11 ${thousands(brotliSize(wasmBytes))}), models ${engine.detector}, ${engine.expression}`
      + (engine.wasmRelaxed ? `; the relaxed-SIMD engine ${engine.wasmRelaxed} ${thousands(fs.statSync(path.join(opts.www, engine.wasmRelaxed)).size)} B, which the page and the micro page load instead where WebAssembly.validate accepts relaxed SIMD${microResult ? ` (micro page: ${microResult.info.ours.relaxedSimd ? 'relaxed' : 'plain'})` : ''}` : '');
    const { rows, notes } = build(microResult, runs, { opts, manifest, selfCheck: selfCheckText, smile });
    const minutes = (Date.now() - t0) / 60000;
    const date = new Date().toISOString().replace('T', ' ').slice(0, 16);
    const header = [
      `- Date: ${date} UTC; runtime ${minutes.toFixed(1)} min; command: \`node bench/run.mjs${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\``,
      `- Machine: ${host.model}, ${host.nproc} cores (nproc), ${host.memGiB.toFixed(0)} GiB, Linux ${host.kernel}; load average ${loadBefore[0].toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at the end`
        + (Math.max(loadBefore[0], os.loadavg()[0]) >= 0.5 * host.nproc ? ' (a busy machine: other builds and tests ran beside the benchmark, so compare ratios within this run, not times across runs)' : ''),
      `- Browser: Chromium ${chromiumVersion} (${CHROMIUM}), headless, driven by playwright-core; Node ${process.version}`,
      `- Ours: ${path.relative(REPO, opts.www).startsWith('..') ? opts.www : path.relative(REPO, opts.www)} (checkout at ${gitCommit(opts.www)}): ${wasm}. face-api.js: @vladmandic/face-api 1.7.15 with @tensorflow/tfjs-backend-wasm 4.22.0`,
    ].join('\n');
    const table = markdownTable(rows);
    const noteText = notes.map((n) => `- ${n}`).join('\n');
    console.log(`\n${header}\n\n${table}\n\nNotes:\n${noteText}\n`);
    if (opts.out) {
      const doc = `# Benchmarks: smile-factor against face-api.js

Written by \`bench/run.mjs\` (\`cd bench && npm ci && node run.mjs --out ../BENCHMARKS.md\`, after
\`./run build\` and \`npm ci\` in \`tests/e2e\`). One run on one machine: quote the medians. Other
work on the machine slows both engines (they alternate, so it hits both), but it can shift the
ratios: the load average is given below. Ratios are ours / face-api.js, so below 1 is better for
every row but 5 (frames per second).

${header}

${table}

Notes:

${noteText}
`;
      // Sections other benchmarks wrote (`## ...`, e.g. the verifier server's) stay.
      const previous = fs.existsSync(opts.out) ? fs.readFileSync(opts.out, 'utf8') : '';
      const kept = previous.indexOf('\n## ');
      fs.writeFileSync(opts.out, kept >= 0 ? `${doc}\n${previous.slice(kept + 1)}` : doc);
      log(`wrote ${opts.out}`);
    }
  } finally {
    await browser.close().catch(() => {});
    await siteSrv.close();
  }
}

main().then(() => process.exit(0), (e) => die(e && e.stack ? e.stack : String(e)));
