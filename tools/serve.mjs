#!/usr/bin/env node
// Local static server for the smile-factor page, with a stand-in identity provider.
//
//   node tools/serve.mjs [--root www] [--port 8080] [--host 127.0.0.1] [--csp strict]
//
// Serves the static directory (no directory traversal, correct MIME types incl.
// application/wasm) and answers GET /continue?... (where the page redirects after its
// verdict) with a small page that shows, HTML-escaped, every query parameter it got.
//
// Caching, as a production host should do it: a file whose name carries a content hash
// (`name.<10 hex>.ext`, written by tools/package.mjs) never changes, so it is cached for a
// year as immutable; everything else (the page, the package entry, config.json) is
// revalidated on every use with a strong ETag, answered by 304 without a body. A second
// visit then downloads nothing but the page.
//
// As a module (the end-to-end tests):
//   const srv = await startServer({ root: 'www', config: origin => ({ returnUrl: origin, duration: 5 }), csp: STRICT_CSP });
//   srv.origin, srv.port, srv.requests ({method, url, time, status, bytes}), srv.continues,
//   await srv.waitForContinue(10000), await srv.close()
// No dependencies beyond Node's standard library.

import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const MIME_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.ogg': 'audio/ogg',
  '.mp3': 'audio/mpeg',
  '.wav': 'audio/wav',
  '.vtt': 'text/vtt; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
};

export function mimeType(file) {
  return MIME_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

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

/** The policy the embed must work under (`--csp strict`); no inline script or style, no eval. */
export const STRICT_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
  "img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:";

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

export const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';
export const CACHE_REVALIDATE = 'no-cache';
/** Error pages and /continue: never kept. */
const CACHE_NONE = 'no-store';

/** True for a file name that carries a content hash, e.g. `smile_factor_bg.0123456789.wasm`. */
export function isHashedName(file) {
  return /\.[0-9a-f]{10}\.[^./]+$/.test(path.basename(file));
}

const etagOf = (hash) => `"${hash.digest('base64url')}"`;

// ETags of files on disk, recomputed when a file changes (size, mtime or inode).
const fileEtags = new Map();
async function fileEtag(file, st) {
  const key = `${st.size}:${st.mtimeMs}:${st.ino}`;
  const known = fileEtags.get(file);
  if (known?.key === key) return known.etag;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk);
  const etag = etagOf(hash);
  fileEtags.set(file, { key, etag });
  return etag;
}

/** RFC 9110 If-None-Match: `*` or a list of entity tags, compared weakly. */
export function noneMatch(header, etag) {
  if (!header) return false;
  if (header.trim() === '*') return true;
  const bare = (t) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => bare(t) === bare(etag));
}

/** Maps a request path to a file inside `root`, or null when it would leave it. */
async function resolveInside(root, pathname) {
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const segments = decoded.split('/');
  if (segments.some((s) => s === '..')) return null;
  let file = path.resolve(root, '.' + path.posix.normalize('/' + decoded));
  if (file !== root && !file.startsWith(root + path.sep)) return null;
  let st;
  try {
    st = await stat(file);
    if (st.isDirectory()) {
      file = path.join(file, 'index.html');
      st = await stat(file);
    }
    // Symlinks must not lead out of the root either.
    const real = await realpath(file);
    if (real !== root && !real.startsWith(root + path.sep)) return null;
  } catch {
    return { file, st: null };
  }
  return st.isFile() ? { file, st } : { file, st: null };
}

/**
 * Starts the server. Resolves once it listens.
 * @param {object} o
 * @param {string} o.root          directory to serve
 * @param {number} [o.port=0]      0 picks a free port
 * @param {string} [o.host='127.0.0.1']
 * @param {object|function} [o.config]  served as /config.json instead of the file (a function gets the origin)
 * @param {string} [o.csp]        a Content-Security-Policy sent with every response (e.g. STRICT_CSP);
 *   /continue, the stand-in identity provider's page, keeps its own stricter policy
 * @param {boolean} [o.log=false]  print each /continue to stdout
 * @param {(pathname: string) => Promise<void|number>|undefined} [o.hold]  tests: a file request
 *   waits for the returned promise (a slow network for chosen files); if that resolves to a
 *   number, the request fails with that HTTP status
 */
export async function startServer({ root, port = 0, host = '127.0.0.1', config, csp, log = false, hold } = {}) {
  if (!root) throw new Error('startServer: root is required');
  const rootDir = await realpath(path.resolve(root)).catch(() => {
    throw new Error(`startServer: root ${root} does not exist`);
  });
  const requests = [];
  const continues = [];
  const waiters = [];
  let consumed = 0; // continues already handed out by waitForContinue
  const sockets = new Set();
  let origin;
  const baseHeaders = { ...SECURITY_HEADERS, ...(csp ? { 'Content-Security-Policy': csp } : {}) };
  const bodyBytes = new WeakMap(); // response -> body length sent, for `requests`

  function send(res, status, body, type = 'text/plain; charset=utf-8', extra = {}) {
    const buf = Buffer.from(body);
    res.writeHead(status, { ...baseHeaders, 'Cache-Control': CACHE_NONE, 'Content-Type': type, 'Content-Length': buf.length, ...extra });
    if (res.req.method === 'HEAD') return res.end();
    bodyBytes.set(res, buf.length);
    res.end(buf);
  }

  /** 304 when the client's copy is current; true when it was sent. */
  function notModified(req, res, etag, cacheControl) {
    if (!noneMatch(req.headers['if-none-match'], etag)) return false;
    res.writeHead(304, { ...baseHeaders, ETag: etag, 'Cache-Control': cacheControl });
    res.end();
    return true;
  }

  function deliver() {
    while (waiters.length && consumed < continues.length) {
      const w = waiters.shift();
      clearTimeout(w.timer);
      w.resolve(continues[consumed++]);
    }
  }

  const server = createServer(async (req, res) => {
    const record = { method: req.method, url: req.url, time: Date.now(), status: null, bytes: 0 };
    requests.push(record);
    res.on('finish', () => {
      record.status = res.statusCode;
      record.bytes = bodyBytes.get(res) ?? 0;
    });
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return send(res, 405, 'method not allowed\n', undefined, { Allow: 'GET, HEAD' });
      }
      const rawPath = req.url.split('?')[0];
      if (!rawPath.startsWith('/') || /(^|\/|\\)(\.|%2e){2}($|\/|\\|%2f|%5c)/i.test(rawPath)) {
        return send(res, 403, 'forbidden\n');
      }
      const url = new URL(req.url, 'http://localhost');
      if (url.pathname === '/continue') {
        continues.push(req.url);
        if (log) console.log(`/continue received: ${req.url}`);
        deliver();
        return send(res, 200, continuePage(req.url), 'text/html; charset=utf-8', {
          'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
        });
      }
      const held = await hold?.(url.pathname);
      if (typeof held === 'number') return send(res, held, 'failed on purpose by the test\n');
      if (url.pathname === '/config.json' && config !== undefined) {
        const value = typeof config === 'function' ? config(origin) : config;
        const body = JSON.stringify(value, null, 2) + '\n';
        const etag = etagOf(createHash('sha256').update(body));
        if (notModified(req, res, etag, CACHE_REVALIDATE)) return;
        return send(res, 200, body, MIME_TYPES['.json'], { ETag: etag, 'Cache-Control': CACHE_REVALIDATE });
      }
      const found = await resolveInside(rootDir, url.pathname);
      if (!found) return send(res, 403, 'forbidden\n');
      if (!found.st) return send(res, 404, 'not found\n');
      const { file, st } = found;
      const etag = await fileEtag(file, st);
      const cacheControl = isHashedName(file) ? CACHE_IMMUTABLE : CACHE_REVALIDATE;
      if (notModified(req, res, etag, cacheControl)) return;
      const headers = {
        ...baseHeaders, 'Content-Type': mimeType(file), 'Accept-Ranges': 'bytes', ETag: etag, 'Cache-Control': cacheControl,
      };
      let start = 0;
      let end = st.size - 1;
      let status = 200;
      const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
      if (range && (range[1] || range[2]) && st.size > 0) {
        if (range[1]) {
          start = Number(range[1]);
          if (range[2]) end = Math.min(Number(range[2]), st.size - 1);
        } else {
          start = Math.max(0, st.size - Number(range[2]));
        }
        if (start > end || start >= st.size) {
          return send(res, 416, 'range not satisfiable\n', undefined, { 'Content-Range': `bytes */${st.size}` });
        }
        status = 206;
        headers['Content-Range'] = `bytes ${start}-${end}/${st.size}`;
      }
      headers['Content-Length'] = st.size === 0 ? 0 : end - start + 1;
      res.writeHead(status, headers);
      if (req.method === 'HEAD' || st.size === 0) return res.end();
      bodyBytes.set(res, headers['Content-Length']);
      const stream = createReadStream(file, { start, end });
      stream.on('error', () => res.destroy());
      res.on('close', () => stream.destroy());
      stream.pipe(res);
    } catch (err) {
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
      if (log) console.error(err);
    }
  });
  // Bounded: no request or idle connection may hold the server forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = server.address().port;
  origin = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;

  let closed = null;
  return {
    origin,
    port: actualPort,
    root: rootDir,
    requests,
    continues,
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
    close() {
      if (!closed) {
        closed = new Promise((resolve) => {
          server.close(() => resolve());
          for (const s of sockets) s.destroy();
          server.closeAllConnections?.();
        });
        for (const w of waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error('server closed'));
        }
      }
      return closed;
    },
  };
}

function parseArgs(argv) {
  const opts = { root: 'www', port: 8080, host: '127.0.0.1', csp: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--(root|port|host|csp)(?:=(.*))?$/.exec(a);
    if (a === '--help' || a === '-h') {
      console.log('usage: node tools/serve.mjs [--root www] [--port 8080] [--host 127.0.0.1] [--csp strict]\n' +
        `  --csp strict  send Content-Security-Policy: ${STRICT_CSP}`);
      process.exit(0);
    }
    if (!m) throw new Error(`unknown argument ${a} (try --help)`);
    const v = m[2] ?? argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    opts[m[1]] = v;
  }
  if (opts.csp !== undefined) {
    if (opts.csp !== 'strict') throw new Error('--csp takes only "strict"');
    opts.csp = STRICT_CSP;
  }
  opts.port = Number(opts.port);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('--port must be 0..65535');
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(e.message);
    process.exit(2);
  }
  const srv = await startServer({ ...opts, log: true }).catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
  const shown = opts.root.endsWith('/') ? opts.root : opts.root + '/';
  console.log(`Serving ${shown} on ${srv.origin} — open ${srv.origin}/?state=demo${opts.csp ? ' (strict CSP)' : ''}`);
  const stop = () => srv.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
