// tools/serve.mjs on its own: MIME types, traversal, 404, /continue, config override, close.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../tools/serve.mjs';

const SERVE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../tools/serve.mjs');

/** A raw GET (the path is sent as is, unlike fetch, which normalises `..`). */
function rawGet(port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
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
      const line = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no output in 5 s')), 5_000);
        child.stdout.once('data', (d) => { clearTimeout(timer); resolve(String(d)); });
        child.once('exit', (c) => reject(new Error(`exited ${c}`)));
      });
      assert.match(line, /^Serving .*www\/ on http:\/\/127\.0\.0\.1:\d+ — open http:\/\/127\.0\.0\.1:\d+\/\?state=demo/);
    } finally {
      child.kill();
    }
  });
});
