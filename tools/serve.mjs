#!/usr/bin/env node
// Local static server for the smile-factor page, with a stand-in identity provider.
//
//   node tools/serve.mjs [--root www] [--port 8080] [--host 127.0.0.1]
//
// Serves the static directory (no directory traversal, correct MIME types incl.
// application/wasm) and answers GET /continue?... (where the page redirects after its
// verdict) with a small page that shows, HTML-escaped, every query parameter it got.
//
// As a module (the end-to-end tests):
//   const srv = await startServer({ root: 'www', config: origin => ({ returnUrl: origin, duration: 5 }) });
//   srv.origin, srv.port, srv.requests, srv.continues, await srv.waitForContinue(10000), await srv.close()
// No dependencies beyond Node's standard library.

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

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

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

function send(res, status, body, type = 'text/plain; charset=utf-8', extra = {}) {
  const buf = Buffer.from(body);
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': buf.length, ...extra });
  res.end(res.req.method === 'HEAD' ? undefined : buf);
}

/**
 * Starts the server. Resolves once it listens.
 * @param {object} o
 * @param {string} o.root          directory to serve
 * @param {number} [o.port=0]      0 picks a free port
 * @param {string} [o.host='127.0.0.1']
 * @param {object|function} [o.config]  served as /config.json instead of the file (a function gets the origin)
 * @param {boolean} [o.log=false]  print each /continue to stdout
 */
export async function startServer({ root, port = 0, host = '127.0.0.1', config, log = false } = {}) {
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

  function deliver() {
    while (waiters.length && consumed < continues.length) {
      const w = waiters.shift();
      clearTimeout(w.timer);
      w.resolve(continues[consumed++]);
    }
  }

  const server = createServer(async (req, res) => {
    requests.push({ method: req.method, url: req.url, time: Date.now() });
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
      if (url.pathname === '/config.json' && config !== undefined) {
        const value = typeof config === 'function' ? config(origin) : config;
        return send(res, 200, JSON.stringify(value, null, 2) + '\n', MIME_TYPES['.json']);
      }
      const found = await resolveInside(rootDir, url.pathname);
      if (!found) return send(res, 403, 'forbidden\n');
      if (!found.st) return send(res, 404, 'not found\n');
      const { file, st } = found;
      const headers = { ...SECURITY_HEADERS, 'Content-Type': mimeType(file), 'Accept-Ranges': 'bytes' };
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
  const opts = { root: 'www', port: 8080, host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--(root|port|host)(?:=(.*))?$/.exec(a);
    if (a === '--help' || a === '-h') {
      console.log('usage: node tools/serve.mjs [--root www] [--port 8080] [--host 127.0.0.1]');
      process.exit(0);
    }
    if (!m) throw new Error(`unknown argument ${a} (try --help)`);
    const v = m[2] ?? argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    opts[m[1]] = v;
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
  console.log(`Serving ${shown} on ${srv.origin} — open ${srv.origin}/?state=demo`);
  const stop = () => srv.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
