// tools/serve.mjs on its own: MIME types, traversal, 404, /continue, config override, close,
// caching (immutable hashed files, ETag + 304 for the rest) and the CSP header.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { STRICT_CSP, startServer } from '../../tools/serve.mjs';

const SERVE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../tools/serve.mjs');

/** A raw GET (the path is sent as is, unlike fetch, which normalises `..`). */
function rawGet(port, p, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, headers, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

describe('tools/serve.mjs', () => {
  let dir;
  let root;
  let srv;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'smile-serve-test-'));
    root = path.join(dir, 'www');
    await mkdir(path.join(root, 'pkg'), { recursive: true });
    await mkdir(path.join(root, 'sub'), { recursive: true });
    const files = {
      'index.html': '<!doctype html>hi', 'app.js': 'x', 'm.mjs': 'x', 'config.json': '{"onDisk":true}', 's.css': 'x',
      'i.png': 'x', 'v.mp4': '0123456789', 'v.webm': 'x', 'c.vtt': 'WEBVTT', 'pkg/a.wasm': 'x', 'm.onnx': 'x', 'sub/index.html': 'sub',
    };
    for (const [f, body] of Object.entries(files)) await writeFile(path.join(root, f), body);
    await writeFile(path.join(dir, 'secret.txt'), 'secret');
    await symlink(path.join(dir, 'secret.txt'), path.join(root, 'link.txt'));
    srv = await startServer({ root, config: (origin) => ({ returnUrl: origin, duration: 5 }) });
  });
  after(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('MIME types', async () => {
    const want = {
      '/': 'text/html', '/app.js': 'text/javascript', '/m.mjs': 'text/javascript', '/s.css': 'text/css',
      '/i.png': 'image/png', '/v.mp4': 'video/mp4', '/v.webm': 'video/webm', '/c.vtt': 'text/vtt',
      '/pkg/a.wasm': 'application/wasm', '/m.onnx': 'application/octet-stream', '/config.json': 'application/json',
    };
    for (const [p, type] of Object.entries(want)) {
      const r = await fetch(srv.origin + p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers.get('content-type').split(';')[0], type, p);
      await r.arrayBuffer();
    }
  });

  test('config override, directories, ranges, 404', async () => {
    assert.deepEqual(await (await fetch(srv.origin + '/config.json')).json(), { returnUrl: srv.origin, duration: 5 });
    assert.equal(await (await fetch(srv.origin + '/sub/')).text(), 'sub');
    const part = await fetch(srv.origin + '/v.mp4', { headers: { range: 'bytes=2-4' } });
    assert.equal(part.status, 206);
    assert.equal(await part.text(), '234');
    for (const p of ['/nope.js', '/pkg/nope.wasm', '/sub/nope']) assert.equal((await rawGet(srv.port, p)).status, 404, p);
  });

  test('hold: a request waits for its promise, or fails with the status it resolves to', async () => {
    let release;
    const released = new Promise((resolve) => { release = resolve; });
    const held = await startServer({
      root,
      config: { held: true },
      hold: (p) => (p === '/app.js' ? released : p === '/config.json' ? Promise.resolve(503) : p === '/m.onnx' ? Promise.resolve(404) : undefined),
    });
    try {
      assert.equal((await rawGet(held.port, '/m.onnx')).status, 404);
      assert.equal((await rawGet(held.port, '/config.json')).status, 503, 'the config override is held too');
      assert.equal((await rawGet(held.port, '/s.css')).status, 200);
      let done = false;
      const slow = rawGet(held.port, '/app.js').then((r) => { done = true; return r; });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(done, false, 'still waiting');
      release();
      assert.equal((await slow).status, 200);
    } finally {
      await held.close();
    }
  });

  test('no way out of the root', async () => {
    for (const p of ['/../secret.txt', '/..%2fsecret.txt', '/%2e%2e/secret.txt', '/sub/../../secret.txt',
      '/sub/%2e%2e%2f%2e%2e%2fsecret.txt', '/..\\secret.txt', '/link.txt', '/%00index.html']) {
      const r = await rawGet(srv.port, p);
      assert.ok(r.status === 403 || r.status === 404, `${p} -> ${r.status}`);
      assert.ok(!r.body.includes('secret'), p);
    }
  });

  test('/continue records the raw URL and shows the parameters escaped', async () => {
    const n = srv.continues.length;
    const waiting = srv.waitForContinue(5_000);
    const p = '/continue?state=%3Cscript%3Ealert(1)%3C%2Fscript%3E%26%22&notsmiling=false&reason=smiled';
    const r = await rawGet(srv.port, p);
    assert.equal(await waiting, p);
    assert.equal(srv.continues.length, n + 1);
    assert.equal(r.status, 200);
    assert.ok(!r.body.includes('<script>'), 'never reflected unescaped');
    assert.ok(r.body.includes('state</code> = <code>&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;'), r.body);
    assert.ok(r.body.includes('notsmiling = false'));
    assert.ok(r.body.includes('reason = smiled'));
    assert.ok(srv.requests.some((x) => x.url === p && x.method === 'GET' && typeof x.time === 'number'));
  });

  test('waitForContinue hands out each /continue once, and times out', async () => {
    await rawGet(srv.port, '/continue?state=early');
    assert.equal(await srv.waitForContinue(1_000), '/continue?state=early'); // arrived before the call
    await assert.rejects(srv.waitForContinue(200), /within 200 ms/);
  });

  test('close() ends open connections and pending waits', async () => {
    const s2 = await startServer({ root });
    const pending = s2.waitForContinue(60_000);
    const agent = new http.Agent({ keepAlive: true });
    await new Promise((resolve) => http.get({ host: '127.0.0.1', port: s2.port, path: '/', agent }, (res) => { res.resume(); res.on('end', resolve); }));
    const t = Date.now();
    await s2.close();
    assert.ok(Date.now() - t < 2_000, 'close() is prompt despite a keep-alive socket');
    await assert.rejects(pending, /closed/);
    agent.destroy();
  });

  test('command line prints where it serves', async () => {
    const child = spawn(process.execPath, [SERVE, '--root', root, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await firstLine(child);
      assert.match(line, /^Serving .*www\/ on http:\/\/127\.0\.0\.1:\d+ — open http:\/\/127\.0\.0\.1:\d+\/\?state=demo/);
      const r = await fetch(/(http:\/\/\S+?:\d+)/.exec(line)[1] + '/');
      assert.equal(r.headers.get('content-security-policy'), null, 'no CSP unless asked for');
      await r.arrayBuffer();
    } finally {
      child.kill();
    }
  });

  test('command line --csp strict sends the strict policy; other values are refused', async () => {
    const child = spawn(process.execPath, [SERVE, '--root', root, '--port', '0', '--csp', 'strict'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await firstLine(child);
      const r = await fetch(/(http:\/\/\S+?:\d+)/.exec(line)[1] + '/app.js');
      assert.equal(r.headers.get('content-security-policy'), STRICT_CSP);
      await r.arrayBuffer();
    } finally {
      child.kill();
    }
    const bad = spawn(process.execPath, [SERVE, '--root', root, '--port', '0', '--csp', "default-src *"], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    bad.stderr.on('data', (d) => (err += d));
    const code = await new Promise((resolve) => bad.once('exit', resolve));
    assert.equal(code, 2);
    assert.match(err, /--csp takes only "strict"/);
  });
});

/** The first chunk a child prints on stdout (the server's "Serving ..." line). */
function firstLine(child) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no output in 5 s')), 5_000);
    child.stdout.once('data', (d) => { clearTimeout(timer); resolve(String(d)); });
    child.once('exit', (c) => reject(new Error(`exited ${c}`)));
  });
}

describe('tools/serve.mjs caching and CSP', () => {
  let dir;
  let srv;
  let strict;
  const IMMUTABLE = 'public, max-age=31536000, immutable';
  const get = (p, headers = {}) => rawGet(srv.port, p, headers);
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'smile-cache-test-'));
    await mkdir(path.join(dir, 'pkg/engine'), { recursive: true });
    const files = {
      'index.html': '<!doctype html>page', 'app.js': 'app', 'config.json': '{}',
      'pkg/smile-factor.js': 'entry', 'pkg/engine/smile_factor_bg.0123456789.wasm': 'wasm',
      'pkg/worker.abcdef0123.js': 'worker', 'pkg/smile-factor.9a8b7c6d5e.css': 'css',
      'pkg/short.012345678.js': 'nine hex', 'pkg/upper.0123456789ABCDEF.js': 'not a hash',
    };
    for (const [f, body] of Object.entries(files)) await writeFile(path.join(dir, f), body);
    srv = await startServer({ root: dir, config: { duration: 5 } });
    strict = await startServer({ root: dir, csp: STRICT_CSP });
  });
  after(async () => {
    await srv?.close();
    await strict?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('files with a content hash in the name are immutable for a year', async () => {
    for (const p of ['/pkg/engine/smile_factor_bg.0123456789.wasm', '/pkg/worker.abcdef0123.js', '/pkg/smile-factor.9a8b7c6d5e.css']) {
      const r = await get(p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['cache-control'], IMMUTABLE, p);
    }
    assert.equal((await get('/pkg/engine/smile_factor_bg.0123456789.wasm')).body, 'wasm');
  });

  test('the page, the entry, app.js, config.json: no-cache with a strong ETag', async () => {
    for (const p of ['/', '/index.html', '/app.js', '/config.json', '/pkg/smile-factor.js', '/pkg/short.012345678.js', '/pkg/upper.0123456789ABCDEF.js']) {
      const r = await get(p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['cache-control'], 'no-cache', p);
      assert.match(r.headers.etag, /^"[A-Za-z0-9_-]{43}"$/, `${p}: strong ETag (sha256)`);
    }
    assert.equal((await get('/')).headers.etag, (await get('/index.html')).headers.etag);
    assert.notEqual((await get('/app.js')).headers.etag, (await get('/index.html')).headers.etag);
  });

  test('If-None-Match: 304 without a body while current, 200 once the file changed', async () => {
    for (const p of ['/', '/app.js', '/config.json', '/pkg/smile-factor.js', '/pkg/worker.abcdef0123.js']) {
      const first = await get(p);
      const etag = first.headers.etag;
      for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
        const r = await get(p, { 'if-none-match': inm });
        assert.equal(r.status, 304, `${p} with If-None-Match: ${inm}`);
        assert.equal(r.body, '', `${p}: a 304 has no body`);
        assert.equal(r.headers.etag, etag, p);
        assert.equal(r.headers['cache-control'], first.headers['cache-control'], p);
        assert.equal(r.headers['x-content-type-options'], 'nosniff', p);
      }
      assert.equal((await get(p, { 'if-none-match': '"stale"' })).status, 200, p);
    }
    const n = srv.requests.length;
    await get('/app.js', { 'if-none-match': (await get('/app.js')).headers.etag });
    assert.deepEqual(srv.requests.slice(n).map((r) => [r.status, r.bytes]), [[200, 3], [304, 0]], 'requests record status and body bytes');

    const old = (await get('/app.js')).headers.etag;
    await writeFile(path.join(dir, 'app.js'), 'app, changed');
    const r = await get('/app.js', { 'if-none-match': old });
    assert.equal(r.status, 200, 'a changed file is sent again');
    assert.equal(r.body, 'app, changed');
    assert.notEqual(r.headers.etag, old);
  });

  test('errors and /continue are never stored', async () => {
    assert.equal((await get('/nope.js')).headers['cache-control'], 'no-store');
    assert.equal((await get('/continue?state=x')).headers['cache-control'], 'no-store');
    await srv.waitForContinue(1_000);
  });

  test('Content-Security-Policy on every response when asked; nosniff always', async () => {
    for (const p of ['/', '/app.js', '/pkg/worker.abcdef0123.js', '/pkg/engine/smile_factor_bg.0123456789.wasm', '/nope.js']) {
      const r = await rawGet(strict.port, p);
      assert.equal(r.headers['content-security-policy'], STRICT_CSP, p);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', p);
      const plain = await get(p);
      assert.equal(plain.headers['content-security-policy'], undefined, `${p}: no CSP unless asked for`);
      assert.equal(plain.headers['x-content-type-options'], 'nosniff', p);
    }
    const etag = (await rawGet(strict.port, '/app.js')).headers.etag;
    const r304 = await rawGet(strict.port, '/app.js', { 'if-none-match': etag });
    assert.equal(r304.status, 304);
    assert.equal(r304.headers['content-security-policy'], STRICT_CSP, 'a 304 carries the policy too');
    assert.equal(STRICT_CSP, "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
      + "img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:");
  });
});
