// Shared harness: a tiny static HTTP server on 127.0.0.1 plus headless Debian
// Chromium (driven by playwright-core) with face-api 1.7.15 and the tfjs wasm
// backend loaded into the page. Used by run.mjs (reference outputs) and
// survey.mjs (helper used once to choose the fixture crops).
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURES = path.resolve(HERE, '..', 'fixtures');
export const FACEAPI_DIR = path.join(HERE, 'node_modules', '@vladmandic', 'face-api');
export const WASM_DIR = path.join(HERE, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export const LABELS = ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'];

export function die(msg) {
  console.error(`ERROR: ${msg}`);
  process.exit(1);
}

/** Rejects after `ms` with a message naming the step, so nothing can hang. */
export function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

export function readPngRgb(file) {
  const png = PNG.sync.read(fs.readFileSync(file));
  const rgb = Buffer.alloc(png.width * png.height * 3);
  for (let i = 0, j = 0; i < png.data.length; i += 4, j += 3) {
    if (png.data[i + 3] !== 255) throw new Error(`${file}: not opaque`);
    rgb[j] = png.data[i]; rgb[j + 1] = png.data[i + 1]; rgb[j + 2] = png.data[i + 2];
  }
  return { width: png.width, height: png.height, rgb };
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
};

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>face-api reference</title></head>
<body><script type="module">
import * as faceapi from '/faceapi/dist/face-api.esm.js';
window.faceapi = faceapi;
window.tf = faceapi.tf;
window.__ready = (async () => {
  const tf = faceapi.tf;
  // Single-threaded: no COOP/COEP headers are sent, so the threaded build is
  // never eligible; pin it anyway so the result does not depend on that.
  tf.setWasmPaths('/wasm/');
  if (tf.setThreadsCount) tf.setThreadsCount(1);
  const ok = await tf.setBackend('wasm');
  if (!ok) throw new Error('tf.setBackend("wasm") failed');
  await tf.ready();
  await faceapi.nets.tinyFaceDetector.loadFromUri('/faceapi/model');
  await faceapi.nets.faceExpressionNet.loadFromUri('/faceapi/model');
  return {
    backend: tf.getBackend(),
    tfjs_version: tf.version_core,
    tfjs_versions: tf.version,
    face_api_version: faceapi.version,
    wasm_simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
    wasm_multithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
    wasm_threads: tf.getThreadsCount ? tf.getThreadsCount() : null,
    cross_origin_isolated: self.crossOriginIsolated,
  };
})();
window.__ready.catch((e) => { window.__readyError = String(e && e.stack || e); });

// Load a PNG served from /fixtures/ (or any served path) and return an int32 HxWx3 tensor.
window.loadTensor = async (url) => {
  const img = new Image();
  img.src = url;
  await img.decode();
  return faceapi.tf.browser.fromPixels(img, 3);
};
</script></body></html>`;

function startServer() {
  const roots = {
    '/faceapi/': FACEAPI_DIR,
    '/wasm/': WASM_DIR,
    '/fixtures/': FIXTURES,
  };
  const log = [];
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url, 'http://127.0.0.1').pathname);
    log.push(url);
    if (url === '/' || url === '/index.html') {
      res.writeHead(200, { 'content-type': TYPES['.html'], 'cache-control': 'no-store' });
      res.end(PAGE);
      return;
    }
    for (const [prefix, root] of Object.entries(roots)) {
      if (!url.startsWith(prefix)) continue;
      const file = path.resolve(root, url.slice(prefix.length));
      if (!file.startsWith(root + path.sep)) break;
      fs.readFile(file, (err, data) => {
        if (err) { res.writeHead(404); res.end('not found'); return; }
        res.writeHead(200, {
          'content-type': TYPES[path.extname(file)] || 'application/octet-stream',
          'cache-control': 'no-store',
        });
        res.end(data);
      });
      return;
    }
    res.writeHead(404); res.end('not found');
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port, log }));
  });
}

/**
 * Starts server + browser, loads face-api and models, calls fn({page, info, base}),
 * and always tears everything down.
 */
export async function withFaceApi(fn) {
  for (const p of [path.join(FACEAPI_DIR, 'dist', 'face-api.esm.js'), path.join(WASM_DIR, 'tfjs-backend-wasm-simd.wasm')]) {
    if (!fs.existsSync(p)) die(`${p} missing: run 'npm ci' in tests/reference first`);
  }
  if (!fs.existsSync(CHROMIUM)) die(`${CHROMIUM} not found (set CHROMIUM=/path/to/chromium)`);

  const { server, port } = await startServer();
  const base = `http://127.0.0.1:${port}`;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceapi-ref-profile-'));
  // Also removed if the process exits early (watchdog / die()).
  const cleanup = () => fs.rmSync(userDataDir, { recursive: true, force: true });
  process.on('exit', cleanup);
  let context;
  try {
    context = await withTimeout(chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 60000,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--disable-extensions', '--disable-default-apps', '--metrics-recording-only',
      ],
    }), 90000, 'launching chromium');
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(120000);
    const consoleErrors = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    // Only our own server may be contacted.
    await page.route('**/*', (route) => {
      const u = new URL(route.request().url());
      if (u.hostname === '127.0.0.1' && u.port === String(port)) return route.continue();
      consoleErrors.push(`blocked request to ${u.href}`);
      return route.abort();
    });
    await withTimeout(page.goto(`${base}/`, { waitUntil: 'load' }), 60000, 'loading page');
    const info = await withTimeout(page.evaluate(async () => {
      for (let i = 0; i < 600 && !window.__ready; i++) await new Promise((r) => setTimeout(r, 100));
      if (!window.__ready) throw new Error(`page module did not run: ${window.__readyError || 'no error recorded'}`);
      return window.__ready;
    }), 120000, 'initialising face-api / wasm backend / models').catch((e) => {
      throw new Error(`${e.message}\npage errors: ${consoleErrors.join('\n')}`);
    });
    info.chromium = context.browser() ? context.browser().version() : await page.evaluate(() => navigator.userAgent);
    return await fn({ page, info, base, consoleErrors });
  } finally {
    if (context) await withTimeout(context.close(), 30000, 'closing browser').catch(() => {});
    server.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}
