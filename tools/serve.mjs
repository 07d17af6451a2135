// Test harness for the end-to-end tests and the benchmark: the verifier server (server/,
// the Rust binary, in demo mode) serves the page, and this thin proxy in front of it adds
// only what a test needs. It holds no header rule of its own: MIME types, caching
// (immutable hashed names, ETag/304), Range, compression, the CSP and the path checks all
// come from the Rust server, passed through unchanged (status, headers, body).
//
// The test hooks:
//   - requests: every request ({method, url, time, status, bytes, headers}: `bytes` is the
//     body as sent, `headers` the response headers);
//   - hold(pathname): a request waits for the returned promise (a slow network for chosen
//     paths); if that resolves to a number, the request fails with that HTTP status;
//   - config: served as /config.json instead of the Rust server's (the on-device configs
//     of the tests), with the headers the Rust server gives its own JSON;
//   - fakeCamera (tests only, never shipped): every HTML page gets
//     `<script src="/__e2e/canvas-camera.js"></script>` first in its <head>, then one
//     `<script src="/__e2e/init-N.js">` per `initScripts` entry; the harness serves these
//     (same origin, so the page's script-src 'self' allows them) and the fixture faces as
//     /__e2e/faces/NAME.png. tests/e2e/canvas-camera.js replaces getUserMedia with a canvas.
//   - GET /continue, the on-device (unsigned) return: a stand-in identity provider page
//     that shows every query parameter, HTML-escaped; recorded in `continues` and handed
//     out by waitForContinue(). POST /continue (the signed return) goes to the Rust server.
//
//   const srv = await startServer({ root: 'www', config: origin => ({ returnUrl: origin, duration: 5 }) });
//   srv.origin, srv.port, srv.upstream (the Rust server's origin), srv.requests, srv.continues,
//   await srv.waitForContinue(10000), srv.output() (the Rust server's log), await srv.close()
//
// Needs the built server (`cargo build -p smile-factor-server`; found through
// CARGO_TARGET_DIR, else target/). No dependencies beyond Node's standard library.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CANVAS_CAMERA = path.join(REPO, 'tests/e2e/canvas-camera.js');
const FACES = path.join(REPO, 'tests/fixtures/crops');

/** `html` with `tags` inserted right after its <head> tag (or at the start without one). */
export function injectIntoHead(html, tags) {
  const m = /<head(\s[^>]*)?>/i.exec(html);
  const at = m ? m.index + m[0].length : 0;
  return html.slice(0, at) + tags + html.slice(at);
}

/** The binary `cargo build -p smile-factor-server` (or `./run test`) leaves. */
export function serverBinary() {
  const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(REPO, 'target');
  const bin = path.join(targetDir, 'debug', 'smile-factor-server');
  if (!existsSync(bin)) {
    throw new Error(`the verifier server is not built: ${bin} is missing. Run \`cargo build -p smile-factor-server\` (./run test does).`);
  }
  return bin;
}

/**
 * Starts the Rust server on a free loopback port in demo mode (no secrets in its
 * environment), serving `www`. Resolves once it prints its demo link. `output()` is
 * everything it wrote (stdout and its log on stderr).
 */
export async function startRustServer({
  www, models = path.join(REPO, 'models'), durationMs, frameIntervalMs, timeoutMs = 30_000,
} = {}) {
  if (!www) throw new Error('startRustServer: www is required');
  const env = { ...process.env, RUST_LOG: 'info' };
  for (const k of Object.keys(env)) if (k.startsWith('SMILE_')) delete env[k];
  const args = ['--listen', '127.0.0.1:0', '--www', www, '--models', models];
  if (durationMs !== undefined) args.push('--duration-ms', String(durationMs));
  if (frameIntervalMs !== undefined) args.push('--frame-interval-ms', String(frameIntervalMs));
  const child = spawn(serverBinary(), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  // Never outlive the tests, even when one forgets close().
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  let out = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    process.off('exit', killOnExit);
    resolve({ code, signal });
  }));
  const origin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the verifier printed no demo link within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /^(http:\/\/127\.0\.0\.1:\d+)\/\?state=/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.stderr.on('data', (chunk) => { out += chunk; });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the verifier exited (${code ?? signal}) before it listened:\n${out}`));
    });
  }).catch(async (e) => {
    child.kill('SIGKILL');
    await exited;
    throw e;
  });
  return {
    origin,
    port: Number(new URL(origin).port),
    output: () => out,
    /** Stops the server and waits for it to exit. */
    async close() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** The stand-in identity provider's page for an on-device (GET) return. */
function continuePage(rawUrl) {
  const params = new URL(rawUrl, 'http://localhost').searchParams;
  const rows = [...params].map(([k, v]) => `<li><code>${escapeHtml(k)}</code> = <code>${escapeHtml(v)}</code></li>`).join('\n');
  const summary = [...params].map(([k, v]) => `${k} = ${v}`).join(', ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>smile-factor: continue</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em}code{background:#eee;padding:0 .25em;word-break:break-all}</style>
</head><body>
<h1>The identity provider received</h1>
<p id="summary">${escapeHtml(summary) || '(no query parameters)'}</p>
<ul id="params">
${rows}
</ul>
<p>Raw request: <code id="raw">${escapeHtml(rawUrl)}</code></p>
</body></html>
`;
}

/** Hop-by-hop headers: they describe one connection and are not passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

/** The config override's entity tag (it has no file on the Rust server's side). */
const etagOf = (body) => `"${createHash('sha256').update(body).digest('base64url')}"`;
const matchesTag = (header, etag) => !!header
  && (header.trim() === '*' || header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag));

/**
 * Starts the Rust server for `root` and the harness in front of it. Resolves once both listen.
 * @param {object} o
 * @param {string} o.root          directory the Rust server serves (its --www)
 * @param {number} [o.port=0]      the harness's port; 0 picks a free one
 * @param {string} [o.host='127.0.0.1']
 * @param {object|function} [o.config]  served as /config.json instead of the Rust server's
 *   (a function gets the harness's origin)
 * @param {boolean} [o.log=false]  print each /continue to stdout
 * @param {(pathname: string) => Promise<void|number>|undefined} [o.hold]  tests: a request
 *   waits for the returned promise; if that resolves to a number, it fails with that status
 * @param {boolean} [o.fakeCamera=false]  tests: load tests/e2e/canvas-camera.js first in
 *   every HTML page (a canvas instead of the camera; engines without a file-fed fake camera)
 * @param {string[]} [o.initScripts=[]]  tests: scripts (source text) loaded in every HTML
 *   page right after it, before the page's own
 * @param {object} [o.upstreamOptions]  passed to startRustServer (durationMs, frameIntervalMs)
 */
export async function startServer({
  root, port = 0, host = '127.0.0.1', config, log = false, hold, fakeCamera = false, initScripts = [], upstreamOptions = {},
} = {}) {
  if (!root) throw new Error('startServer: root is required');
  const rootDir = await realpath(path.resolve(root)).catch(() => {
    throw new Error(`startServer: root ${root} does not exist`);
  });
  const upstream = await startRustServer({ www: rootDir, ...upstreamOptions });
  const injecting = fakeCamera || initScripts.length > 0;
  const injected = [...(fakeCamera ? ['canvas-camera.js'] : []), ...initScripts.map((_, i) => `init-${i}.js`)]
    .map((name) => `<script src="/__e2e/${name}"></script>`).join('');
  const agent = new http.Agent({ keepAlive: true });
  const requests = [];
  const continues = [];
  const waiters = [];
  let consumed = 0; // continues already handed out by waitForContinue
  const sockets = new Set();
  let origin;

  /** A response of the harness itself (a test hook), never of the page host. */
  function send(res, status, body, headers) {
    const buf = Buffer.from(body);
    const all = { 'Content-Length': buf.length, ...headers };
    res.sentHeaders = Object.fromEntries(Object.entries(all).map(([k, v]) => [k.toLowerCase(), String(v)]));
    res.writeHead(status, all);
    if (res.req.method === 'HEAD') return res.end();
    res.bytes = buf.length;
    res.end(buf);
  }
  const sendText = (res, status, text) => send(res, status, text, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });

  /** Sends the request on to the Rust server; resolves with its response (body unread). */
  function forward(req, { method = req.method, url = req.url, drop = [] } = {}) {
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && !drop.includes(k)) headers[k] = v;
    return new Promise((resolve, reject) => {
      const up = http.request({ host: '127.0.0.1', port: upstream.port, method, path: url, headers, agent }, resolve);
      up.on('error', reject);
      if (method === req.method && method !== 'GET' && method !== 'HEAD') req.pipe(up);
      else up.end();
    });
  }

  /** A test script or fixture face under /__e2e/ (only when injecting); false if none. */
  async function serveE2e(res, pathname) {
    const js = (body) => send(res, 200, body, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' });
    if (fakeCamera && pathname === '/__e2e/canvas-camera.js') return js(await readFile(CANVAS_CAMERA)), true;
    const init = /^\/__e2e\/init-(\d+)\.js$/.exec(pathname);
    if (init && Number(init[1]) < initScripts.length) return js(initScripts[Number(init[1])]), true;
    const face = /^\/__e2e\/faces\/([\w-]+)\.png$/.exec(pathname);
    if (face && existsSync(path.join(FACES, `${face[1]}.png`))) {
      send(res, 200, await readFile(path.join(FACES, `${face[1]}.png`)), { 'Content-Type': 'image/png', 'Cache-Control': 'no-store' });
      return true;
    }
    return false;
  }

  /** The Rust server's HTML page with the test scripts first in <head>; never cached. */
  async function proxyInjected(req, res, upRes) {
    const chunks = [];
    for await (const c of upRes) chunks.push(c);
    const headers = {};
    for (const [k, v] of Object.entries(upRes.headers)) {
      if (!HOP_BY_HOP.has(k) && !['content-length', 'etag', 'last-modified', 'cache-control'].includes(k)) headers[k] = v;
    }
    headers['cache-control'] = 'no-store';
    send(res, upRes.statusCode, injectIntoHead(Buffer.concat(chunks).toString('utf8'), injected), headers);
  }

  /** Status, headers and body of the Rust server's answer, unchanged (but for injection). */
  async function proxy(req, res) {
    // Injection needs the page uncompressed and whole (never a 304 of an uninjected copy).
    const upRes = await forward(req, injecting && req.method === 'GET'
      ? { drop: ['accept-encoding', 'if-none-match', 'if-modified-since', 'range'] } : {});
    if (injecting && req.method === 'GET' && upRes.statusCode === 200
      && /^text\/html/i.test(upRes.headers['content-type'] ?? '') && !upRes.headers['content-encoding']) {
      return proxyInjected(req, res, upRes);
    }
    const raw = [];
    for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
      if (!HOP_BY_HOP.has(upRes.rawHeaders[i].toLowerCase())) raw.push(upRes.rawHeaders[i], upRes.rawHeaders[i + 1]);
    }
    res.sentHeaders = upRes.headers;
    res.writeHead(upRes.statusCode, upRes.statusMessage, raw);
    res.bytes = 0;
    upRes.on('data', (chunk) => { res.bytes += chunk.length; });
    upRes.on('error', () => res.destroy());
    res.on('close', () => { if (!upRes.complete) upRes.destroy(); });
    upRes.pipe(res);
  }

  /** The config override, with the headers of the Rust server's own /config.json. */
  async function serveConfig(req, res) {
    const value = typeof config === 'function' ? config(origin) : config;
    const body = JSON.stringify(value, null, 2) + '\n';
    const etag = etagOf(body);
    const model = await forward(req, { method: 'GET', drop: ['if-none-match', 'if-modified-since', 'accept-encoding', 'range'] });
    model.resume();
    if (model.statusCode !== 200) throw new Error(`the Rust server answered ${model.statusCode} for its /config.json`);
    const headers = {};
    for (const [k, v] of Object.entries(model.headers)) {
      if (!HOP_BY_HOP.has(k) && !['content-length', 'etag', 'date', 'content-encoding'].includes(k)) headers[k] = v;
    }
    headers.etag = etag;
    if (matchesTag(req.headers['if-none-match'], etag)) {
      delete headers['content-type'];
      res.sentHeaders = headers;
      res.writeHead(304, headers);
      return res.end();
    }
    send(res, 200, body, headers);
  }

  function deliver() {
    while (waiters.length && consumed < continues.length) {
      const w = waiters.shift();
      clearTimeout(w.timer);
      w.resolve(continues[consumed++]);
    }
  }

  const server = http.createServer(async (req, res) => {
    const record = { method: req.method, url: req.url, time: Date.now(), status: null, bytes: 0, headers: {} };
    requests.push(record);
    res.on('finish', () => {
      record.status = res.statusCode;
      record.bytes = res.bytes ?? 0;
      record.headers = res.sentHeaders ?? {};
    });
    try {
      const pathname = req.url.split('?')[0];
      if (pathname === '/continue' && (req.method === 'GET' || req.method === 'HEAD')) {
        continues.push(req.url);
        if (log) console.log(`/continue received: ${req.url}`);
        deliver();
        return send(res, 200, continuePage(req.url), {
          'Content-Type': 'text/html; charset=utf-8',
          'Cache-Control': 'no-store',
          'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
          'X-Content-Type-Options': 'nosniff',
          'Referrer-Policy': 'no-referrer',
        });
      }
      if (injecting && pathname.startsWith('/__e2e/') && (await serveE2e(res, pathname))) return;
      const held = await hold?.(pathname);
      if (typeof held === 'number') return sendText(res, held, 'failed on purpose by the test\n');
      if (pathname === '/config.json' && config !== undefined && (req.method === 'GET' || req.method === 'HEAD')) {
        return await serveConfig(req, res);
      }
      await proxy(req, res);
    } catch (err) {
      if (!res.headersSent) sendText(res, 502, `the harness could not reach the verifier server: ${err.message}\n`);
      else res.destroy();
      if (log) console.error(err);
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    await upstream.close();
    throw e;
  }
  const actualPort = server.address().port;
  origin = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;

  let closed = null;
  return {
    origin,
    port: actualPort,
    root: rootDir,
    /** The Rust server's own origin (tests of the harness; the page uses `origin`). */
    upstream: upstream.origin,
    requests,
    continues,
    /** Everything the Rust server printed (its access log among it). */
    output: upstream.output,
    /** Resolves with the next /continue URL not yet returned by an earlier call (including one that already arrived). */
    waitForContinue(timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const w = { resolve, reject, timer: null };
        w.timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`no request reached /continue within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(w);
        deliver();
      });
    },
    /** Stops the harness (ending open connections and pending waits) and the Rust server. */
    close() {
      if (!closed) {
        closed = Promise.all([
          new Promise((resolve) => {
            server.close(() => resolve());
            for (const s of sockets) s.destroy();
            server.closeAllConnections?.();
          }),
          upstream.close(),
        ]).then(() => agent.destroy());
        for (const w of waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error('server closed'));
        }
      }
      return closed;
    },
  };
}
