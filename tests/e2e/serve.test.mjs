// The page host's header rules, asserted against their one copy, the Rust server
// (server/src/statics.rs and the layers in server/src/lib.rs), through the harness
// tools/serve.mjs, which must pass them on unchanged: MIME types, directories, Range,
// 404, no traversal, immutable caching of hashed names, no-cache + ETag/304 for the rest,
// errors never stored, compression (precompressed .br/.gz siblings, one ETag per
// encoding), the CSP and the other security headers. Then the harness's own hooks: the
// config override, hold, GET /continue, waitForContinue, the request log, close(). Needs
// `cargo build -p smile-factor-server`; the built engine's test also needs `./run build`.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { precompressed } from '../../tools/package.mjs';
import { startServer } from '../../tools/serve.mjs';
import { WWW } from './helpers.mjs';

/** The policy the page must run under (README "Headers"); the server adds `form-action`. */
const STRICT_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
  + "img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:";
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** What Chromium sends in Accept-Encoding. */
const CHROMIUM_ACCEPT = 'gzip, deflate, br, zstd';

/** A raw request (the path is sent as is, unlike fetch, which normalises `..`); the body undecoded. */
function rawGet(port, p, headers = {}, { method = 'GET', body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers, timeout: 5_000 }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: res.statusCode, type: res.headers['content-type'], headers: res.headers, bytes, body: bytes.toString('utf8') });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

async function tempSite(prefix, files) {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  for (const [f, body] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, f)), { recursive: true });
    await writeFile(path.join(dir, f), body);
  }
  return dir;
}

describe('the Rust server\'s header rules, through the harness', () => {
  let dir;
  let root;
  let srv;
  const get = (p, headers, o) => rawGet(srv.port, p, headers, o);
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'smile-serve-test-'));
    root = path.join(dir, 'www');
    const files = {
      'index.html': '<!doctype html>hi', 'app.js': 'app', 'm.mjs': 'x', 'config.json': '{"onDisk":true}', 's.css': 'x',
      'i.png': 'x', 'v.mp4': '0123456789', 'v.webm': 'x', 'c.vtt': 'WEBVTT', 'pkg/a.wasm': 'x', 'm.onnx': 'x', 'sub/index.html': 'sub',
      'big.js': `// ${'smile '.repeat(2_000)}\n`,
      'pkg/smile-factor.js': 'entry', 'pkg/engine/smile_factor_bg.0123456789.wasm': 'wasm',
      'pkg/worker.abcdef0123.js': 'worker', 'pkg/smile-factor.9a8b7c6d5e.css': 'css',
      'pkg/short.012345678.js': 'nine hex', 'pkg/upper.0123456789ABCDEF.js': 'not a hash',
    };
    for (const [f, body] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, f)), { recursive: true });
      await writeFile(path.join(root, f), body);
    }
    await writeFile(path.join(dir, 'secret.txt'), 'secret');
    await symlink(path.join(dir, 'secret.txt'), path.join(root, 'link.txt'));
    srv = await startServer({ root });
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
      const r = await get(p);
      assert.equal(r.status, 200, p);
      assert.equal(r.type.split(';')[0], type, p);
    }
  });

  test('directories, ranges, HEAD, 404, 405', async () => {
    assert.equal((await get('/sub/')).body, 'sub');
    const part = await get('/v.mp4', { range: 'bytes=2-4' });
    assert.equal(part.status, 206);
    assert.equal(part.body, '234');
    assert.equal(part.headers['content-range'], 'bytes 2-4/10');
    assert.equal((await get('/v.mp4', { range: 'bytes=-3' })).body, '789');
    assert.equal((await get('/v.mp4', { range: 'bytes=20-30' })).status, 416);
    const head = await get('/v.mp4', {}, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '10');
    assert.equal(head.body, '');
    for (const p of ['/nope.js', '/pkg/nope.wasm', '/sub/nope']) assert.equal((await get(p)).status, 404, p);
    const del = await get('/app.js', {}, { method: 'DELETE' });
    assert.equal(del.status, 405);
    assert.match(del.headers.allow, /GET, HEAD/);
  });

  test('no way out of the root', async () => {
    for (const p of ['/../secret.txt', '/..%2fsecret.txt', '/%2e%2e/secret.txt', '/sub/../../secret.txt',
      '/sub/%2e%2e%2f%2e%2e%2fsecret.txt', '/..\\secret.txt', '/link.txt', '/%00index.html']) {
      const r = await get(p);
      assert.ok(r.status === 403 || r.status === 404, `${p} -> ${r.status}`);
      assert.ok(!r.body.includes('secret'), p);
    }
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
    const old = (await get('/app.js')).headers.etag;
    await writeFile(path.join(root, 'app.js'), 'app, changed');
    const r = await get('/app.js', { 'if-none-match': old });
    assert.equal(r.status, 200, 'a changed file is sent again');
    assert.equal(r.body, 'app, changed');
    assert.notEqual(r.headers.etag, old);
  });

  test('errors are never stored', async () => {
    for (const p of ['/nope.js', '/../secret.txt']) assert.equal((await get(p)).headers['cache-control'], 'no-store', p);
  });

  test('gzip and brotli on the fly when there is no precompressed copy, with a weak ETag of their own', async () => {
    const plain = await get('/big.js');
    assert.equal(plain.headers['content-encoding'], undefined);
    for (const [enc, decode] of [['gzip', zlib.gunzipSync], ['br', zlib.brotliDecompressSync]]) {
      const r = await get('/big.js', { 'accept-encoding': enc });
      assert.equal(r.headers['content-encoding'], enc);
      assert.match(r.headers.vary, /accept-encoding/i);
      assert.ok(r.bytes.length < plain.bytes.length / 10, `${enc}: ${r.bytes.length} of ${plain.bytes.length} bytes`);
      assert.deepEqual(decode(r.bytes), plain.bytes, enc);
      assert.equal(r.headers.etag, `W/${plain.headers.etag.slice(0, -1)}.${enc}"`);
    }
  });

  test('precompressed .br and .gz (as tools/package.mjs writes them): br first, own ETags, 304 per encoding, Range from the identity', async () => {
    const asset = 'pkg/engine/smile_factor_bg.fedcba9876.wasm';
    const identity = Buffer.from(`\0asm\x01\0\0\0${'smile '.repeat(500)}`);
    const siblings = precompressed(new Map([[asset, identity]]));
    await writeFile(path.join(root, asset), identity);
    for (const [f, buf] of siblings) await writeFile(path.join(root, f), buf);
    const p = `/${asset}`;
    const sent = {};
    for (const [accept, enc, decode] of [[CHROMIUM_ACCEPT, 'br', zlib.brotliDecompressSync], ['gzip', 'gzip', zlib.gunzipSync],
      ['identity', undefined, (b) => b]]) {
      const r = await get(p, { 'accept-encoding': accept });
      assert.equal(r.status, 200, accept);
      assert.equal(r.headers['content-encoding'], enc, accept);
      assert.equal(r.headers['content-type'], 'application/wasm', accept);
      assert.equal(r.headers['cache-control'], IMMUTABLE, accept);
      assert.match(r.headers.vary, /accept-encoding/i, accept);
      assert.deepEqual(decode(r.bytes), identity, accept);
      if (enc) assert.deepEqual(r.bytes, siblings.get(`${asset}.${enc === 'br' ? 'br' : 'gz'}`), `${accept}: the file on disk as it is`);
      assert.match(r.headers.etag, /^"[A-Za-z0-9_-]{43}(\.br|\.gzip)?"$/, `${accept}: strong`);
      sent[enc ?? 'identity'] = r.headers.etag;
    }
    assert.equal(new Set(Object.values(sent)).size, 3, `one ETag per encoding: ${JSON.stringify(sent)}`);
    assert.equal((await get(p, { 'accept-encoding': CHROMIUM_ACCEPT, 'if-none-match': sent.br })).status, 304);
    assert.equal((await get(p, { 'accept-encoding': 'gzip', 'if-none-match': sent.gzip })).status, 304);
    assert.equal((await get(p, { 'accept-encoding': 'gzip', 'if-none-match': sent.br })).status, 200, 'the br tag does not validate gzip');
    assert.equal((await get(p, { 'if-none-match': sent.br })).status, 200, 'nor the identity');
    const part = await get(p, { 'accept-encoding': CHROMIUM_ACCEPT, range: 'bytes=0-3' });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-encoding'], undefined);
    assert.deepEqual(part.bytes, identity.subarray(0, 4));
    assert.equal(part.headers.etag, sent.identity);
    for (const q of [`${p}.br`, `${p}.gz`]) assert.equal((await get(q, { 'accept-encoding': CHROMIUM_ACCEPT })).status, 404, q);
  });

  test('the strict Content-Security-Policy and nosniff on every response, a 304 too', async () => {
    const csp = `${STRICT_CSP}; form-action 'self' ${srv.upstream}`;
    for (const p of ['/', '/app.js', '/pkg/worker.abcdef0123.js', '/pkg/engine/smile_factor_bg.0123456789.wasm', '/nope.js', '/../x']) {
      const r = await get(p);
      assert.equal(r.headers['content-security-policy'], csp, p);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', p);
      assert.equal(r.headers['referrer-policy'], 'no-referrer', p);
    }
    const etag = (await get('/app.js')).headers.etag;
    const r304 = await get('/app.js', { 'if-none-match': etag });
    assert.equal(r304.status, 304);
    assert.equal(r304.headers['content-security-policy'], csp, 'a 304 carries the policy too');
  });

  test('POSTs reach the Rust server: its API answers, its /continue checks a token', async () => {
    const api = await get('/api/v1/challenges', { 'content-type': 'application/json' }, { method: 'POST', body: '{"state":' });
    assert.equal(api.status, 400);
    assert.equal(JSON.parse(api.body).error, 'bad_json');
    const n = srv.continues.length;
    const cont = await get('/continue?state=s', { 'content-type': 'application/x-www-form-urlencoded' }, { method: 'POST', body: 'smile_token=x' });
    assert.equal(cont.status, 200);
    assert.match(cont.body, /data-valid="false"/, 'the Rust server\'s check of the (bad) token');
    assert.equal(srv.continues.length, n, 'a POST is not an on-device return');
  });
});

test('the built engine arrives as brotli in Chromium-like requests and decodes to the same bytes', async () => {
  const engineDir = path.join(WWW, 'pkg', 'engine');
  const wasm = existsSync(engineDir) && readdirSync(engineDir).find((f) => /^smile_factor_bg\.[0-9a-f]{10}\.wasm$/.test(f));
  assert.ok(wasm, `${engineDir} has no built engine: run \`./run build\` first`);
  const srv = await startServer({ root: WWW });
  try {
    const p = `/pkg/engine/${wasm}`;
    const identity = readFileSync(path.join(engineDir, wasm));
    const r = await rawGet(srv.port, p, { 'accept-encoding': CHROMIUM_ACCEPT });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], 'br');
    assert.equal(r.headers['content-type'], 'application/wasm');
    assert.match(r.headers.vary, /accept-encoding/i);
    assert.deepEqual(zlib.brotliDecompressSync(r.bytes), identity);
    assert.equal(r.bytes.length, statSync(path.join(engineDir, `${wasm}.br`)).size, 'the precompressed file, as it is');
    const logged = srv.requests.find((x) => x.url === p);
    assert.equal(logged.bytes, r.bytes.length, 'the harness passed the brotli body on unchanged');
    const gz = await rawGet(srv.port, p, { 'accept-encoding': 'gzip, deflate' });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.deepEqual(zlib.gunzipSync(gz.bytes), identity);
    console.log(`${wasm}: ${identity.length.toLocaleString('en-US')} B raw, ${gz.bytes.length.toLocaleString('en-US')} B gzip, `
      + `${r.bytes.length.toLocaleString('en-US')} B brotli on the wire`);
  } finally {
    await srv.close();
  }
});

describe('the harness\'s test hooks', () => {
  let root;
  let srv;
  before(async () => {
    root = await tempSite('smile-hooks-test-', { 'index.html': '<!doctype html>hi', 'app.js': 'app', 's.css': 'x', 'm.onnx': 'x' });
    srv = await startServer({ root, config: (origin) => ({ returnUrl: origin, duration: 5 }) });
  });
  after(async () => {
    await srv?.close();
    await rm(root, { recursive: true, force: true });
  });

  test('config override: the given JSON, with the headers of the Rust server\'s own JSON, ETag and 304', async () => {
    const r = await rawGet(srv.port, '/config.json');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { returnUrl: srv.origin, duration: 5 });
    const own = await rawGet(Number(new URL(srv.upstream).port), '/config.json');
    assert.equal(JSON.parse(own.body).verify, true, 'without the override: the Rust server\'s demo config');
    for (const h of ['content-type', 'cache-control', 'content-security-policy', 'x-content-type-options', 'referrer-policy']) {
      assert.equal(r.headers[h], own.headers[h], h);
    }
    assert.equal(r.headers['cache-control'], 'no-cache');
    assert.match(r.headers.etag, /^"[A-Za-z0-9_-]{43}"$/);
    assert.notEqual(r.headers.etag, own.headers.etag);
    const r304 = await rawGet(srv.port, '/config.json', { 'if-none-match': `W/${r.headers.etag}` });
    assert.equal(r304.status, 304);
    assert.equal(r304.body, '');
    assert.equal(r304.headers.etag, r.headers.etag);
    assert.equal(r304.headers['content-security-policy'], own.headers['content-security-policy']);
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

  test('GET /continue records the raw URL and shows the parameters escaped; never stored', async () => {
    const n = srv.continues.length;
    const waiting = srv.waitForContinue(5_000);
    const p = '/continue?state=%3Cscript%3Ealert(1)%3C%2Fscript%3E%26%22&notsmiling=false&reason=smiled';
    const r = await rawGet(srv.port, p);
    assert.equal(await waiting, p);
    assert.equal(srv.continues.length, n + 1);
    assert.equal(r.status, 200);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(r.headers['content-security-policy'], "default-src 'none'; style-src 'unsafe-inline'");
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

  test('requests record status, body bytes as sent, and the response headers', async () => {
    const n = srv.requests.length;
    const etag = (await rawGet(srv.port, '/app.js')).headers.etag;
    await rawGet(srv.port, '/app.js', { 'if-none-match': etag });
    await rawGet(srv.port, '/nope');
    const seen = srv.requests.slice(n);
    assert.deepEqual(seen.map((r) => [r.status, r.bytes]), [[200, 3], [304, 0], [404, 10]]);
    assert.equal(seen[0].headers.etag, etag);
    assert.equal(seen[0].headers['cache-control'], 'no-cache');
    assert.match(srv.output(), /GET.*\/app\.js/, 'the Rust server logged what it served');
  });

  test('close() ends open connections, pending waits and the Rust server', async () => {
    const s2 = await startServer({ root });
    const pending = assert.rejects(s2.waitForContinue(60_000), /closed/);
    const agent = new http.Agent({ keepAlive: true });
    await new Promise((resolve) => http.get({ host: '127.0.0.1', port: s2.port, path: '/', agent }, (res) => { res.resume(); res.on('end', resolve); }));
    const t = Date.now();
    await s2.close();
    assert.ok(Date.now() - t < 2_000, 'close() is prompt despite a keep-alive socket');
    await pending;
    await assert.rejects(fetch(s2.upstream + '/'), 'the Rust server is gone');
    agent.destroy();
  });
});
