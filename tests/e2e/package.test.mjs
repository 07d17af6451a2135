// The npm package as a user gets it: `npm pack` of pkg/ (built by `./run build`), installed
// offline into a scratch project, and used from a scratch page served with the strict CSP:
// mount() in headless Chromium with the neutral fake camera, Start clicked inside the
// element's shadow root, the resolved result read back from the page.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { startServer } from '../../tools/serve.mjs';
import { DURATION_S, OUT, REPO, cameraFile, clickShadowStart } from './helpers.mjs';
import { launchBrowser } from './webdriver.mjs';

const run = promisify(execFile);
// SMILE_E2E_PKG points the suite at another package directory (used to develop the test).
const PKG = process.env.SMILE_E2E_PKG ? path.resolve(process.env.SMILE_E2E_PKG) : path.join(REPO, 'pkg');
const H = '[0-9a-f]{10}';
/** Every file the package must contain, and nothing else. */
const EXPECTED = [
  /^package\.json$/, /^README\.md$/, /^LICENSE$/, /^smile-factor\.js$/, /^smile-factor\.d\.ts$/,
  new RegExp(`^smile-factor\\.${H}\\.css$`), new RegExp(`^worker\\.${H}\\.js$`),
  new RegExp(`^engine/smile_factor\\.${H}\\.js$`), new RegExp(`^engine/smile_factor_bg\\.${H}\\.wasm$`),
  new RegExp(`^models/tiny_face_detector\\.${H}\\.onnx$`), new RegExp(`^models/face_expression\\.${H}\\.onnx$`),
];

/** The relaxed-SIMD engine, in a package built with it (`./run build`; tools/package.mjs --engine-relaxed). */
const RELAXED = new RegExp(`^engine/smile_factor_bg_relaxed\\.${H}\\.wasm$`);

/** The precompressed copies tools/package.mjs writes next to each asset; not in the tarball. */
const SIBLING = /\.(br|gz)$/;
/** The package's documents, which get no precompressed copies. */
const DOCUMENTS = ['package.json', 'README.md', 'LICENSE', 'smile-factor.d.ts'];

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;

async function listFiles(dir, prefix = '') {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix + e.name;
    if (e.isDirectory()) out.push(...await listFiles(path.join(dir, e.name), rel + '/'));
    else out.push(rel);
  }
  return out.sort();
}

const SCRATCH_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>smile-factor from npm</title>
  <link rel="icon" href="data:,">
  <script type="module" src="main.js"></script>
</head>
<body>
  <h1>Sign in: one more step</h1>
  <div id="factor"></div>
</body>
</html>
`;

// What a developer would write after \`npm install smile-factor\`, without a bundler.
const SCRATCH_JS = `import { mount } from './node_modules/smile-factor/smile-factor.js';

const root = document.documentElement;
const violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  violations.push(\`\${e.effectiveDirective} \${e.blockedURI}\`);
  root.dataset.cspViolations = JSON.stringify(violations);
});
try {
  const result = await mount(document.querySelector('#factor'), { duration: ${DURATION_S} });
  root.dataset.result = JSON.stringify(result);
} catch (error) {
  root.dataset.error = String(error?.message ?? error);
}
`;

// The packager alone, on small stand-in sources (no build needed): hashes, rewrites, loud failures.
describe('tools/package.mjs', { concurrency: false }, () => {
  const PACKAGE = path.join(REPO, 'tools/package.mjs');
  const ENTRY_SRC = [
    "import init from './engine/smile_factor.js';",
    "// usage: import { mount } from './somewhere/smile-factor.js';",
    "export const assets = [new URL('./worker.js', import.meta.url), new URL('./smile-factor.css', import.meta.url),",
    "  new URL('./engine/smile_factor_bg.wasm', import.meta.url), new URL('./engine/smile_factor_bg_relaxed.wasm', import.meta.url),",
    "  new URL('./models/tiny_face_detector.onnx', import.meta.url),",
    '  new URL("./models/face_expression.onnx", import.meta.url)];',
    'export function mount() { return init; }',
  ].join('\n');
  let dir;
  const pack = (src, out) => run(process.execPath, [PACKAGE, '--engine', path.join(dir, 'engine'), '--src', src,
    '--out', path.join(dir, out), '--site', path.join(dir, `${out}-site`)], { cwd: dir });
  async function sources(name, entry = ENTRY_SRC) {
    const src = path.join(dir, name);
    await mkdir(src, { recursive: true });
    await writeFile(path.join(src, 'smile-factor.js'), entry);
    await writeFile(path.join(src, 'worker.js'), "import init from './engine/smile_factor.js';\ninit();\n");
    await writeFile(path.join(src, 'smile-factor.css'), ':host { display: block }\n');
    await writeFile(path.join(src, 'smile-factor.d.ts'), 'export declare function mount(e: Element): Promise<unknown>;\n');
    await writeFile(path.join(src, 'README.md'), '# stand-in\n');
    return src;
  }

  test('hashes every asset by content and rewrites the names that point at them', { timeout: 60_000 }, async () => {
    await mkdir(OUT, { recursive: true }); // a fresh clone has no target/e2e yet
    dir = await mkdtemp(path.join(OUT, 'packager-'));
    await mkdir(path.join(dir, 'engine'));
    await writeFile(path.join(dir, 'engine/smile_factor_bg.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    await writeFile(path.join(dir, 'engine/smile_factor.js'),
      "export default async function init(p) { p ??= new URL('smile_factor_bg.wasm', import.meta.url); return p; }\n");
    const { stdout } = await pack(await sources('js'), 'pkg');
    const out = path.join(dir, 'pkg');
    const written = await listFiles(out);
    const files = written.filter((f) => !SIBLING.test(f));
    for (const re of EXPECTED) assert.equal(files.filter((f) => re.test(f)).length, 1, `${re}: ${files}`);
    assert.equal(files.length, EXPECTED.length, files.join(', '));
    const read = (f) => readFile(path.join(out, f));
    // Every asset a page loads has a .br and a .gz that decode to it; the documents have none.
    const assets = files.filter((f) => !DOCUMENTS.includes(f));
    assert.deepEqual(written.filter((f) => SIBLING.test(f)), assets.flatMap((f) => [`${f}.br`, `${f}.gz`]).sort());
    for (const f of assets) {
      assert.deepEqual(zlib.brotliDecompressSync(await read(`${f}.br`)), await read(f), `${f}.br`);
      assert.deepEqual(zlib.gunzipSync(await read(`${f}.gz`)), await read(f), `${f}.gz`);
    }
    for (const f of files.filter((x) => /\.[0-9a-f]{10}\./.test(x))) {
      assert.equal(/\.([0-9a-f]{10})\./.exec(f)[1], sha256(await read(f)).slice(0, 10), f);
    }
    const name = (re) => files.find((f) => re.test(f));
    const entry = String(await read('smile-factor.js'));
    for (const f of files.filter((x) => /\.[0-9a-f]{10}\./.test(x))) assert.ok(entry.includes(`./${f}`), `the entry names ${f}`);
    assert.ok(entry.includes("'./somewhere/smile-factor.js'"), 'comments are left alone');
    assert.ok(String(await read(name(/^worker\./))).includes(`'./${name(/^engine\/smile_factor\./)}'`), 'the worker imports the hashed glue');
    assert.ok(String(await read(name(/^engine\/smile_factor\./))).includes(`'${path.posix.basename(name(/^engine\/smile_factor_bg\./))}'`),
      "the glue's default wasm URL is the hashed one");
    assert.deepEqual(await listFiles(path.join(dir, 'pkg-site')), written, '--site gets the same files');
    const pj = JSON.parse(String(await read('package.json')));
    assert.deepEqual([...pj.files].sort(), files.filter((f) => f !== 'package.json'), '`files` lists the package, no .br/.gz');
    assert.match(stdout, /total, what a page loads/);
    assert.match(stdout, /\| +bytes \| +gzip -9 \| +brotli 11 \|/);
    // Byte for byte the same output on a second run.
    await pack(path.join(dir, 'js'), 'pkg-again');
    assert.deepEqual(await listFiles(path.join(dir, 'pkg-again')), written);
    for (const f of written) assert.deepEqual(await readFile(path.join(dir, 'pkg-again', f)), await read(f), `${f} is reproducible`);
    const integrity = `sha384-${createHash('sha384').update(await read('smile-factor.js')).digest('base64')}`;
    assert.ok(stdout.includes(`integrity="${integrity}" crossorigin="anonymous"`), stdout);
  });

  test("a relaxed engine numbering its closure shims otherwise gets the plain glue's names; any other difference stops the build", async () => {
    const { renameExports, shimRenames } = await import(pathToFileURL(PACKAGE).href);
    const glue = (a, b) => `function ${a}(x) { wasm.${a}(x); }\nconst f = ${b};\nconst g = makeMutClosure(0, 1, ${a});\n`;
    const shim = (n) => `__wasm_bindgen_func_elem_${n}`;
    assert.deepEqual([...shimRenames(glue(shim(5), shim(6)), glue(shim(6), shim(7)))], [[shim(5), shim(6)], [shim(6), shim(7)]]);
    assert.equal(shimRenames(glue(shim(5), shim(6)), glue(shim(5), shim(6))).size, 0, 'equal glues: nothing to rename');
    assert.equal(shimRenames(glue(shim(5), shim(6)), `${glue(shim(6), shim(7))}// more\n`), null, 'other text differs');
    assert.equal(shimRenames(glue(shim(5), shim(5)), glue(shim(6), shim(7))), null, 'one name cannot become two');
    assert.equal(shimRenames(glue(shim(5), shim(6)), glue(shim(7), shim(7))), null, 'two names cannot become one');
    // A module exporting two empty functions under shim names, and a memory.
    const name = (n) => [n.length, ...Buffer.from(n)];
    const exports = [2 + 1, ...name(shim(5)), 0, 0, ...name(shim(6)), 0, 1, ...name('memory'), 2, 0];
    const module = Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
      1, 4, 1, 0x60, 0, 0, // type: () -> ()
      3, 3, 2, 0, 0, // two functions of that type
      5, 3, 1, 0, 1, // memory, 1 page
      7, exports.length, ...exports,
      10, 7, 2, 2, 0, 0x0b, 2, 0, 0x0b]); // two empty bodies
    const renamed = renameExports(module, new Map([[shim(5), shim(6)], [shim(6), shim(7)]]));
    assert.deepEqual(WebAssembly.Module.exports(new WebAssembly.Module(renamed)).map((e) => `${e.name}:${e.kind}`),
      [`${shim(6)}:function`, `${shim(7)}:function`, 'memory:memory']);
    assert.throws(() => renameExports(module, new Map([[shim(5), shim(6)]])), /two exports named/);
    assert.throws(() => renameExports(module, new Map([[shim(9), shim(10)]])), /not exported/);
  });

  test('a missing or dangling specifier stops the build', { timeout: 60_000 }, async () => {
    const noCss = await sources('js-no-css', ENTRY_SRC.replace("new URL('./smile-factor.css', import.meta.url),", ''));
    await assert.rejects(pack(noCss, 'pkg-bad'), (e) => e.code === 1 && /expected the specifier '\.\/smile-factor\.css'/.test(e.stderr));
    const extra = await sources('js-extra', `${ENTRY_SRC}\nexport const x = new URL('./models/other.onnx', import.meta.url);\n`);
    await assert.rejects(pack(extra, 'pkg-bad'), (e) => e.code === 1 && /refers to \.\/models\/other\.onnx/.test(e.stderr));
    await assert.rejects(run(process.execPath, [PACKAGE, '--engine', path.join(dir, 'engine'), '--out', REPO]),
      (e) => e.code === 1 && /would delete sources/.test(e.stderr));
    await rm(dir, { recursive: true, force: true });
  });
});

describe('the npm package', { concurrency: false }, () => {
  let tarball; // absolute path, set by the first test
  let scratch; // the scratch project, set by the second

  test('npm pack of pkg/ holds exactly the package files', { timeout: 120_000 }, async (t) => {
    if (!existsSync(path.join(PKG, 'package.json'))) {
      throw new Error(`${PKG}/package.json is missing: run \`./run build\` first (from the repository root)`);
    }
    await mkdir(OUT, { recursive: true });
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', OUT], { cwd: PKG, maxBuffer: 16 << 20 });
    const [info] = JSON.parse(stdout);
    tarball = path.join(OUT, info.filename);
    assert.ok(existsSync(tarball), tarball);

    const files = info.files.map((f) => f.path).sort();
    for (const re of [...EXPECTED, RELAXED]) {
      assert.equal(files.filter((f) => re.test(f)).length, 1, `exactly one file matches ${re}: ${files.join(', ')}`);
    }
    assert.equal(files.length, EXPECTED.length + 1, `no stray files (no .br/.gz): ${files.join(', ')}`);
    const inPkg = (await listFiles(PKG)).filter((f) => !SIBLING.test(f));
    assert.deepEqual(files, inPkg, 'the tarball holds what pkg/ holds but its precompressed copies');

    // Every hashed name is the sha256 of its content, and every asset is referenced.
    const text = {};
    for (const f of files) {
      const buf = await readFile(path.join(PKG, f));
      const h = /\.([0-9a-f]{10})\.[^.]+$/.exec(f)?.[1];
      if (h) assert.equal(h, sha256(buf).slice(0, 10), `${f}: the name carries its content hash`);
      if (/\.(js|css|json)$/.test(f)) text[f] = buf.toString('utf8');
    }
    const entry = text['smile-factor.js'];
    const worker = Object.keys(text).find((f) => f.startsWith('worker.'));
    const glue = Object.keys(text).find((f) => f.startsWith('engine/smile_factor.'));
    const refs = (src, f) => src.includes(`'./${f}'`) || src.includes(`"./${f}"`) || src.includes(`'${path.posix.basename(f)}'`);
    for (const f of files.filter((x) => /\.[0-9a-f]{10}\./.test(x))) {
      const where = [['smile-factor.js', entry], [worker, text[worker]], [glue, text[glue]]];
      assert.ok(where.some(([, src]) => refs(src, f)), `${f} is referenced from the entry, the worker or the glue`);
    }
    assert.ok(!/['"]\.\/(worker\.js|smile-factor\.css|engine\/smile_factor(_bg)?\.(js|wasm)|models\/\w+\.onnx)['"]/.test(entry),
      'the entry names no unhashed asset');

    for (const m of ['tiny_face_detector', 'face_expression']) {
      const f = files.find((x) => x.startsWith(`models/${m}.`));
      assert.equal(sha256(await readFile(path.join(PKG, f))), sha256(await readFile(path.join(REPO, 'models', `${m}.onnx`))),
        `${f} is the committed model`);
    }

    const pj = JSON.parse(text['package.json']);
    const cargoVersion = /^\[package\][\s\S]*?^version\s*=\s*"([^"]+)"/m.exec(readFileSync(path.join(REPO, 'Cargo.toml'), 'utf8'))[1];
    assert.equal(pj.name, 'smile-factor');
    assert.equal(pj.version, cargoVersion, 'version from Cargo.toml');
    assert.equal(pj.license, 'MIT');
    assert.equal(pj.type, 'module');
    assert.equal(pj.types, './smile-factor.d.ts');
    assert.deepEqual(pj.exports['.'], { types: './smile-factor.d.ts', import: './smile-factor.js', default: './smile-factor.js' });
    assert.match(pj.exports['./smile-factor.css'], new RegExp(`^\\./smile-factor\\.${H}\\.css$`));
    assert.ok(pj.sideEffects.includes('./smile-factor.js'), 'the entry is kept by bundlers: it registers <smile-factor>');
    assert.equal(pj.dependencies, undefined, 'no dependencies');
    assert.ok(pj.description && pj.repository?.url && pj.keywords?.length, 'description, repository, keywords');
    assert.match(text['smile-factor.js'] ?? '', /export/);
    const licence = await readFile(path.join(PKG, 'LICENSE'), 'utf8');
    assert.match(licence, /^MIT License/);
    assert.match(licence, /smile-factor contributors/);
    assert.match(licence, /Vladimir Mandic/, 'the face-api.js notice for the model weights');
    assert.match(await readFile(path.join(PKG, 'smile-factor.d.ts'), 'utf8'), /\bmount\b/, 'types declare mount');

    t.diagnostic(`${info.filename}: ${info.size.toLocaleString('en-US')} bytes packed (${kb(info.size)}), `
      + `${info.unpackedSize.toLocaleString('en-US')} unpacked, ${files.length} files`);
    console.log(`npm pack: ${info.filename} is ${info.size.toLocaleString('en-US')} bytes, ${info.unpackedSize.toLocaleString('en-US')} unpacked`);
  });

  test('the tarball installs offline into a scratch project', { timeout: 120_000 }, async () => {
    assert.ok(tarball, 'needs the tarball from the previous test');
    for (const old of (await readdir(OUT)).filter((f) => f.startsWith('scratch-'))) {
      await rm(path.join(OUT, old), { recursive: true, force: true });
    }
    scratch = await mkdtemp(path.join(OUT, 'scratch-'));
    await writeFile(path.join(scratch, 'package.json'),
      JSON.stringify({ name: 'scratch-page', private: true, type: 'module' }, null, 2) + '\n');
    // Its own npm cache: the install must not depend on anything fetched before.
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--cache', path.join(scratch, '.npm-cache'), tarball],
      { cwd: scratch, maxBuffer: 16 << 20 });
    const installed = path.join(scratch, 'node_modules/smile-factor');
    const files = await listFiles(installed);
    assert.deepEqual(files, (await listFiles(PKG)).filter((f) => !SIBLING.test(f)), 'node_modules/smile-factor holds the package files');
    for (const f of files) {
      assert.equal(sha256(await readFile(path.join(installed, f))), sha256(await readFile(path.join(PKG, f))), f);
    }
    const deps = JSON.parse(await readFile(path.join(scratch, 'package.json'), 'utf8')).dependencies;
    assert.match(deps?.['smile-factor'] ?? '', /^file:.*\.tgz$/, 'recorded as a dependency');
    await writeFile(path.join(scratch, 'index.html'), SCRATCH_HTML);
    await writeFile(path.join(scratch, 'main.js'), SCRATCH_JS);
  });

  test('a scratch page under the strict CSP mounts it; a neutral face passes', { timeout: 180_000 }, async () => {
    assert.ok(scratch, 'needs the scratch project from the previous test');
    const srv = await startServer({ root: scratch }); // the Rust server sends its strict CSP
    let browser;
    try {
      browser = await launchBrowser({ fakeCamera: await cameraFile('neutral') });
      await browser.navigate(`${srv.origin}/`, 30_000);

      // Like a user: wait for the element's own Start button, then click it.
      await clickShadowStart(browser, '#factor smile-factor', {
        failFast: () => document.documentElement.dataset.error ?? null,
      });
      const ds = await browser.waitFor(() => {
        const d = document.documentElement.dataset;
        return d.result || d.error ? { ...d } : null;
      }, [], { timeoutMs: DURATION_S * 1000 + 30_000, what: 'mount() to resolve (data-result) or fail (data-error)' });
      const log = await browser.getLog('browser').catch(() => []);
      const cspLog = log.filter((e) => /Content Security Policy/i.test(e.message)).map((e) => e.message);

      assert.equal(ds.error, undefined, `mount() rejected: ${ds.error}`);
      assert.equal(ds.cspViolations, undefined, `CSP violations: ${ds.cspViolations}`);
      assert.deepEqual(cspLog, [], 'no CSP complaint in the console');
      const result = JSON.parse(ds.result);
      assert.equal(result.notsmiling, true, `a neutral face passes: ${ds.result}`);
      assert.ok(result.framesAnalysed > 0, `frames were analysed: ${ds.result}`);
      assert.ok(result.faceSeenRatio >= 0.8, `the face was seen: ${ds.result}`);
      assert.ok(result.maxSmileScore < 0.5, `no smile score reached the default threshold: ${ds.result}`);

      // The page used the installed package's assets, all found.
      const fetched = srv.requests.map((r) => `${r.status} ${r.url}`);
      // One engine file of the two: the relaxed-SIMD one, which Chromium validates.
      const engines = srv.requests.filter((r) => /engine\/smile_factor_bg(_relaxed)?\.[0-9a-f]{10}\.wasm$/.test(r.url));
      assert.equal(engines.length, 1, `one engine file fetched:\n${fetched.join('\n')}`);
      assert.match(engines[0].url, /smile_factor_bg_relaxed\./, 'Chromium gets the relaxed-SIMD engine');
      for (const re of [/engine\/smile_factor_bg_relaxed\.[0-9a-f]{10}\.wasm$/, /models\/tiny_face_detector\.[0-9a-f]{10}\.onnx$/,
        /models\/face_expression\.[0-9a-f]{10}\.onnx$/]) {
        assert.ok(srv.requests.some((r) => r.status === 200 && r.url.startsWith('/node_modules/smile-factor/') && re.test(r.url)),
          `fetched from node_modules: ${re}\n${fetched.join('\n')}`);
      }
      assert.deepEqual(srv.requests.filter((r) => r.status >= 400 && r.url.startsWith('/node_modules/')).map((r) => r.url), [],
        'every package file the page asked for was there');
      console.log(`scratch page: ${ds.result}`);
    } finally {
      if (browser) await browser.quit();
      await srv.close();
    }
  });
});
