// A second visit downloads nothing but the page: the built site (www/, after `./run build`)
// served by the Rust server (through the harness tools/serve.mjs, which passes its headers
// on unchanged), two whole challenges in the same Chromium profile. The harness's request
// log says what crossed the network: on the second visit no content-hashed asset at all
// (the browser's cache had them: the server sent them immutable), the other small files
// only revalidated (304). Chromium takes brotli: the engine and the models cross as the
// .br copies tools/package.mjs wrote, and the revalidations match their per-encoding ETags.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { WWW, runChallenge, withPage } from './helpers.mjs';

/** A name with a content hash, `name.<10 hex>.ext`, as tools/package.mjs writes them. */
const isHashedName = (file) => /\.[0-9a-f]{10}\.[^./]+$/.test(path.basename(file));
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** Files under www/pkg whose names carry a content hash (the layout tools/package.mjs writes). */
function hashedInPkg() {
  const dir = path.join(WWW, 'pkg');
  if (!existsSync(path.join(dir, 'smile-factor.js'))) return [];
  return readdirSync(dir, { recursive: true }).map(String).filter((f) => isHashedName(f));
}

const pathOf = (url) => new URL(url, 'http://x').pathname;
const n = (v) => v.toLocaleString('en-US');

test('a second visit fetches only the page; hashed assets come from the cache', { timeout: 180_000 }, async (t) => {
  if (!hashedInPkg().length) {
    throw new Error('www/pkg/ has no content-hashed package (smile-factor.js + name.<hash>.ext files): run `./run build` first');
  }
  await withPage({ camera: 'neutral' }, async (ctx) => {
    const { srv, browser } = ctx;
    const first = await runChallenge(ctx, '?state=first-visit');
    assert.equal(first.url.searchParams.get('notsmiling'), 'true', `first visit: ${first.raw}`);
    const visit1 = srv.requests.filter((r) => pathOf(r.url) !== '/continue');
    await browser.navigate('about:blank');

    const mark = srv.requests.length;
    const second = await runChallenge(ctx, '?state=second-visit');
    assert.equal(second.url.searchParams.get('notsmiling'), 'true', `second visit: ${second.raw}`);
    const visit2 = srv.requests.slice(mark).filter((r) => pathOf(r.url) !== '/continue');

    const lines = (rs) => rs.map((r) => `  ${r.status} ${n(r.bytes).padStart(12)} ${(r.headers['content-encoding'] ?? '-').padEnd(4)} ${r.url}`);
    const show = (rs) => lines(rs).join('\n');
    const total = (rs) => n(rs.reduce((s, r) => s + r.bytes, 0));
    for (const [name, rs] of [['first', visit1], ['second', visit2]]) {
      t.diagnostic(`${name} visit: ${rs.length} requests, ${total(rs)} body bytes (status, bytes, Content-Encoding, path)`);
      for (const l of lines(rs)) t.diagnostic(l);
    }

    // The first visit fetched the package's hashed assets, so the second one had them to reuse.
    const hashed1 = visit1.filter((r) => isHashedName(pathOf(r.url)));
    for (const ext of ['.wasm', '.js']) {
      assert.ok(hashed1.some((r) => r.status === 200 && pathOf(r.url).endsWith(ext)), `first visit fetched a hashed ${ext}:\n${show(visit1)}`);
    }
    // The server's caching rule: hashed names immutable for a year, everything else revalidated.
    for (const r of visit1.filter((x) => x.status === 200)) {
      assert.equal(r.headers['cache-control'], isHashedName(pathOf(r.url)) ? IMMUTABLE : 'no-cache', `Cache-Control of ${r.url}`);
    }

    const page = (r) => pathOf(r.url) === '/' || pathOf(r.url) === '/index.html';
    assert.deepEqual(visit2.filter((r) => isHashedName(pathOf(r.url))).map((r) => r.url), [],
      `no hashed asset crossed the network on the second visit:\n${show(visit2)}`);
    assert.deepEqual(visit2.filter((r) => !page(r) && r.status !== 304).map((r) => `${r.status} ${r.url}`), [],
      `everything but the page was revalidated with 304:\n${show(visit2)}`);
    assert.equal(visit2.filter(page).length, 1, `the page itself was fetched once:\n${show(visit2)}`);

    // What a production host would lose if the heavy files had no hash: they must have one.
    const heavy = visit1.filter((r) => /\.(wasm|onnx)$/.test(pathOf(r.url)));
    assert.ok(heavy.length >= 3, `the engine and both models were fetched on the first visit:\n${show(visit1)}`);
    assert.deepEqual(heavy.filter((r) => !isHashedName(pathOf(r.url))).map((r) => r.url), [],
      'the wasm and the models carry content hashes');
    for (const r of heavy) {
      assert.equal(r.headers['content-encoding'], 'br', `${r.url} arrived as brotli`);
      assert.equal(r.bytes, statSync(path.join(WWW, `${pathOf(r.url)}.br`)).size, `${r.url}: the precompressed file as it is`);
    }
  });
});
