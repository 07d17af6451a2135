#!/usr/bin/env node
// Assembles the publishable npm package from the hand-written sources in js/, the
// wasm-bindgen output and the models, with content-hashed asset names so a server can
// cache them forever (the verifier server, server/src/statics.rs, does):
//
//   node tools/package.mjs --engine target/wasm-pkg --out pkg [--site www/pkg]
//                          [--src js] [--models models]
//
// Every asset is named `<name>.<first 10 hex of its sha256>.<ext>`; the specifiers that
// point at them are rewritten bottom-up (wasm -> glue -> worker -> entry), so each hash
// covers the names inside the file. The entry keeps its name: it is the public import.
// A specifier that is expected but missing, or a relative one left pointing at nothing,
// stops the build: a rename must not silently ship a broken package.
//
// Next to every asset a page loads (entry, worker, glue, wasm, models, stylesheet) it
// writes `<file>.br` (brotli, quality 11) and `<file>.gz` (gzip -9), the same bytes on
// every run and platform, for the verifier server to send as they are (Content-Encoding).
// They stay out of the npm tarball (`files` lists the package without them): npm gzips
// the tarball anyway, they would more than double its download for bytes a host compresses
// itself, and nothing imports them.
// Node's standard library only.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { brotliCompressSync, constants as zlibConstants, gzipSync } from 'node:zlib';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const HASH_LENGTH = 10;
/** A file name that carries a content hash, as written by this script. */
export const HASHED_NAME = /\.[0-9a-f]{10}\.[^./]+$/;

const ENTRY = 'smile-factor.js';
const GLUE = 'smile_factor.js';
const WASM = 'smile_factor_bg.wasm';
/** The engine built with relaxed SIMD (fused multiply-add): same exports, same glue. */
const WASM_RELAXED = 'smile_factor_bg_relaxed.wasm';
const MODELS = ['tiny_face_detector.onnx', 'face_expression.onnx'];

export const contentHash = (buf) => createHash('sha256').update(buf).digest('hex').slice(0, HASH_LENGTH);

/** `dir/name.ext` -> `dir/name.<hash>.ext` */
export function hashedName(file, buf) {
  const ext = path.posix.extname(file);
  return `${file.slice(0, -ext.length)}.${contentHash(buf)}${ext}`;
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Replaces every string literal equal to a key of `map` ('', "" or ``) with its value.
 * Throws when a specifier in `required` does not occur in `text`.
 */
export function rewriteSpecifiers(text, map, required, where) {
  let out = text;
  for (const [from, to] of Object.entries(map)) {
    const re = new RegExp(`(['"\`])${escapeRe(from)}\\1`, 'g');
    let n = 0;
    out = out.replace(re, (_, q) => {
      n++;
      return `${q}${to}${q}`;
    });
    if (n === 0 && required.includes(from)) {
      throw new Error(`${where}: expected the specifier '${from}' but it is not there; ` +
        'the package layout and tools/package.mjs must change together');
    }
  }
  return out;
}

/**
 * Relative specifiers ('./x', '../x') in string literals that name no file of the package.
 * Whole-line comments are skipped: usage examples there name the user's paths.
 */
export function danglingSpecifiers(text, fileInPkg, present) {
  const dir = path.posix.dirname(fileInPkg);
  const found = [];
  const code = text.split('\n').filter((l) => !/^\s*(\/\/|\/\*|\*)/.test(l)).join('\n');
  for (const m of code.matchAll(/(['"`])(\.\.?\/[^'"`\s]+)\1/g)) {
    const target = path.posix.normalize(path.posix.join(dir, m[2]));
    if (!present.has(target)) found.push(m[2]);
  }
  return [...new Set(found)];
}

async function readInput(file, what) {
  try {
    return await readFile(file);
  } catch {
    throw new Error(`missing ${what}: ${path.relative(process.cwd(), file) || file}`);
  }
}

/** name, version, description and repository from Cargo.toml's [package] table. */
export function cargoPackage(toml) {
  const table = /^\[package\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(toml)?.[1] ?? '';
  const field = (k) => new RegExp(`^${k}\\s*=\\s*"((?:[^"\\\\]|\\\\.)*)"`, 'm').exec(table)?.[1];
  const pkg = { version: field('version'), description: field('description'), repository: field('repository') };
  if (!pkg.version) throw new Error('Cargo.toml: no version in [package]');
  return pkg;
}

/** wasm-bindgen's closure shims, exported by function index: `__wasm_bindgen_func_elem_N`. */
const SHIM = /__wasm_bindgen_func_elem_\d+/g;

/**
 * How the relaxed engine's glue names its closure shims where the plain glue names them
 * otherwise: the two builds may number their functions differently (one inlining
 * decision apart), and only those names then differ. Returns the renames (relaxed name ->
 * plain name; empty if the glues are equal), or null if the glues differ in anything
 * else or the names do not pair one to one.
 */
export function shimRenames(relaxedGlue, plainGlue) {
  if (relaxedGlue.replace(SHIM, 'SHIM') !== plainGlue.replace(SHIM, 'SHIM')) return null;
  const [from, to] = [relaxedGlue.match(SHIM) ?? [], plainGlue.match(SHIM) ?? []];
  const renames = new Map();
  const back = new Map();
  for (const [i, a] of from.entries()) {
    const b = to[i];
    if ((renames.get(a) ?? b) !== b || (back.get(b) ?? a) !== a) return null;
    renames.set(a, b);
    back.set(b, a);
  }
  for (const [a, b] of renames) if (a === b) renames.delete(a);
  return renames;
}

/**
 * `wasm` with its exports renamed per `renames` (export name -> new name), every other
 * byte kept. Throws if an export to rename is missing, or a new name is taken already.
 */
export function renameExports(wasm, renames) {
  const readU32 = (buf, at) => {
    let value = 0;
    for (let shift = 0, i = at; ; shift += 7, i++) {
      if (i >= buf.length || shift > 28) throw new Error('the relaxed-SIMD wasm module: a bad LEB128 number');
      value += (buf[i] & 0x7f) * 2 ** shift;
      if (!(buf[i] & 0x80)) return [value, i + 1];
    }
  };
  const u32 = (n) => {
    const out = [];
    do {
      let byte = n & 0x7f;
      n = Math.floor(n / 128);
      if (n) byte |= 0x80;
      out.push(byte);
    } while (n);
    return Buffer.from(out);
  };
  const parts = [wasm.subarray(0, 8)];
  let at = 8;
  let renamed = 0;
  while (at < wasm.length) {
    const id = wasm[at];
    const [size, body] = readU32(wasm, at + 1);
    const end = body + size;
    if (id !== 7) {
      parts.push(wasm.subarray(at, end));
      at = end;
      continue;
    }
    const [count, first] = readU32(wasm, body);
    const entries = [u32(count)];
    const names = new Set();
    let p = first;
    for (let i = 0; i < count; i++) {
      const [len, nameAt] = readU32(wasm, p);
      let name = wasm.subarray(nameAt, nameAt + len).toString('utf8');
      const kindAt = nameAt + len;
      const [, next] = readU32(wasm, kindAt + 1);
      if (renames.has(name)) {
        name = renames.get(name);
        renamed++;
      }
      if (names.has(name)) throw new Error(`the relaxed-SIMD wasm module: two exports named ${name} after renaming`);
      names.add(name);
      const bytes = Buffer.from(name, 'utf8');
      entries.push(u32(bytes.length), bytes, wasm.subarray(kindAt, next));
      p = next;
    }
    const section = Buffer.concat(entries);
    parts.push(Buffer.from([7]), u32(section.length), section);
    at = end;
  }
  if (renamed !== renames.size) throw new Error(`the relaxed-SIMD wasm module: ${renames.size - renamed} of the shims to rename are not exported`);
  return Buffer.concat(parts);
}

/**
 * Builds the package in memory: returns { files: Map<path, Buffer>, packageJson, names }.
 * Pure apart from reading the inputs.
 */
export async function assemble({ engine, engineRelaxed, src, models, repo = REPO }) {
  if (existsSync(path.join(engine, 'snippets'))) {
    // wasm-bindgen inline JS would be imported by the glue from paths this script does not map.
    throw new Error(`${engine}/snippets exists: the glue imports JS snippets, which tools/package.mjs does not package yet`);
  }
  const files = new Map();
  const names = {};
  const add = (stable, buf) => {
    const name = hashedName(stable, buf);
    files.set(name, buf);
    names[stable] = name;
    return name;
  };

  // Leaves first: the wasm, the models, the stylesheet.
  const wasmName = add(`engine/${WASM}`, await readInput(path.join(engine, WASM), 'the wasm module (wasm-pack output)'));
  // The relaxed-SIMD engine, when built: it must come with the very same glue (same
  // exports and imports), so the entry can hand either module to it. Without one, the
  // entry's relaxed name points at the plain engine.
  if (engineRelaxed) {
    const relaxedGlue = (await readInput(path.join(engineRelaxed, GLUE), 'the relaxed engine\'s glue')).toString('utf8');
    const plainGlue = (await readInput(path.join(engine, GLUE), 'the wasm-bindgen glue')).toString('utf8');
    const renames = shimRenames(relaxedGlue, plainGlue);
    if (!renames) throw new Error(`${engineRelaxed}/${GLUE} differs from ${engine}/${GLUE}: the two engines must share one glue`);
    const relaxedWasm = await readInput(path.join(engineRelaxed, WASM), 'the relaxed-SIMD wasm module');
    add(`engine/${WASM_RELAXED}`, renames.size ? renameExports(relaxedWasm, renames) : relaxedWasm);
  } else {
    names[`engine/${WASM_RELAXED}`] = wasmName;
  }
  for (const m of MODELS) add(`models/${m}`, await readInput(path.join(models, m), `the model ${m}`));
  add('smile-factor.css', await readInput(path.join(src, 'smile-factor.css'), 'the stylesheet'));

  // The glue's own default wasm URL (used when init() gets no path, and seen by bundlers).
  const glueSrc = (await readInput(path.join(engine, GLUE), 'the wasm-bindgen glue')).toString('utf8');
  const glue = rewriteSpecifiers(glueSrc, { [WASM]: path.posix.basename(wasmName) }, [WASM], `${engine}/${GLUE}`);
  add(`engine/${GLUE}`, Buffer.from(glue));

  const assets = {
    './engine/smile_factor.js': `./${names[`engine/${GLUE}`]}`,
    './engine/smile_factor_bg.wasm': `./${names[`engine/${WASM}`]}`,
    './engine/smile_factor_bg_relaxed.wasm': `./${names[`engine/${WASM_RELAXED}`]}`,
    './models/tiny_face_detector.onnx': `./${names['models/tiny_face_detector.onnx']}`,
    './models/face_expression.onnx': `./${names['models/face_expression.onnx']}`,
    './smile-factor.css': `./${names['smile-factor.css']}`,
  };
  const workerSrc = (await readInput(path.join(src, 'worker.js'), 'the worker')).toString('utf8');
  const worker = rewriteSpecifiers(workerSrc, assets, ['./engine/smile_factor.js'], 'js/worker.js');
  add('worker.js', Buffer.from(worker));

  const entrySrc = (await readInput(path.join(src, ENTRY), 'the entry')).toString('utf8');
  const entry = rewriteSpecifiers(entrySrc, { ...assets, './worker.js': `./${names['worker.js']}` },
    [...Object.keys(assets), './worker.js'], `js/${ENTRY}`);
  files.set(ENTRY, Buffer.from(entry));
  const types = await readInput(path.join(src, 'smile-factor.d.ts'), 'the type declarations');
  files.set('smile-factor.d.ts', types);
  files.set('README.md', await readInput(path.join(src, 'README.md'), 'the package README (js/README.md)'));
  files.set('LICENSE', await readInput(path.join(repo, 'LICENSE'), 'the licence (LICENSE)'));

  const present = new Set(files.keys());
  for (const [f, text] of [[ENTRY, entry], [names['worker.js'], worker], ['smile-factor.d.ts', types.toString('utf8')]]) {
    const bad = danglingSpecifiers(text, f, present);
    if (bad.length) throw new Error(`${f} refers to ${bad.join(', ')}, which the package does not contain`);
  }

  const cargo = cargoPackage(await readInput(path.join(repo, 'Cargo.toml'), 'Cargo.toml'));
  const cssName = `./${names['smile-factor.css']}`;
  const packageJson = {
    name: 'smile-factor',
    version: cargo.version,
    description: cargo.description ?? 'On-device smile detection for a playful login factor.',
    keywords: ['smile', 'face-detection', 'webcam', 'webassembly', 'wasm', 'login', 'mfa', 'auth0', 'custom-element', 'face-api'],
    license: 'MIT',
    ...(cargo.repository ? { repository: { type: 'git', url: cargo.repository } } : {}),
    type: 'module',
    main: `./${ENTRY}`,
    module: `./${ENTRY}`,
    types: './smile-factor.d.ts',
    exports: {
      '.': { types: './smile-factor.d.ts', import: `./${ENTRY}`, default: `./${ENTRY}` },
      './smile-factor.css': cssName,
      './package.json': './package.json',
    },
    files: [...files.keys()].sort(),
    // The entry registers <smile-factor>; a stylesheet import must not be dropped either.
    sideEffects: [`./${ENTRY}`, cssName],
  };
  files.set('package.json', Buffer.from(JSON.stringify(packageJson, null, 2) + '\n'));
  return { files, packageJson, names };
}

export async function writePackage(files, out) {
  await rm(out, { recursive: true, force: true });
  for (const [f, buf] of files) {
    await mkdir(path.join(out, path.dirname(f)), { recursive: true });
    await writeFile(path.join(out, f), buf);
  }
}

/** Subresource Integrity value (sha384, base64) of a buffer. */
export const sri = (buf) => `sha384-${createHash('sha384').update(buf).digest('base64')}`;

/** The files a page loads: everything but the package's documents. */
export const RUNTIME = (f) => !['README.md', 'LICENSE', 'package.json', 'smile-factor.d.ts'].includes(f);

/**
 * gzip -9. Node writes mtime 0; the header's OS byte is pinned to 3 (Unix, as `gzip -9`
 * writes it) so Windows builds give the same bytes.
 */
export function gzip9(buf) {
  const out = gzipSync(buf, { level: 9 });
  out[9] = 3;
  return out;
}

/** Brotli at its maximum quality (11), in text mode for text; deterministic. */
export function brotli11(buf, { text = false } = {}) {
  const { BROTLI_PARAM_QUALITY, BROTLI_MAX_QUALITY, BROTLI_PARAM_MODE, BROTLI_MODE_TEXT, BROTLI_MODE_GENERIC,
    BROTLI_PARAM_SIZE_HINT } = zlibConstants;
  return brotliCompressSync(buf, {
    params: {
      [BROTLI_PARAM_QUALITY]: BROTLI_MAX_QUALITY,
      [BROTLI_PARAM_MODE]: text ? BROTLI_MODE_TEXT : BROTLI_MODE_GENERIC,
      [BROTLI_PARAM_SIZE_HINT]: buf.length,
    },
  });
}

const isText = (f) => /\.(js|css|json|md|ts)$/.test(f) || f === 'LICENSE';

/** `<file>.br` and `<file>.gz` for every file a page loads (RUNTIME), as a Map like `files`. */
export function precompressed(files) {
  const out = new Map();
  for (const [f, buf] of files) {
    if (!RUNTIME(f)) continue;
    out.set(`${f}.br`, brotli11(buf, { text: isText(f) }));
    out.set(`${f}.gz`, gzip9(buf));
  }
  return out;
}

/**
 * The size table: raw, gzip -9 and brotli 11 of every package file. `siblings` (from
 * precompressed()) gives the sizes of the files that have them; the rest are compressed here.
 */
export function report(files, siblings = precompressed(files)) {
  const size = (f, ext, compress) => (siblings.get(`${f}.${ext}`) ?? compress(files.get(f))).length;
  const rows = [...files.keys()].sort((a, b) => (a === ENTRY ? -1 : b === ENTRY ? 1 : a.localeCompare(b)))
    .map((f) => [f, files.get(f).length, size(f, 'gz', gzip9), size(f, 'br', (b) => brotli11(b, { text: isText(f) }))]);
  const sum = (rs, i) => rs.reduce((s, r) => s + r[i], 0);
  // A page loads one of the two engine files: the plain one is counted.
  const runtime = rows.filter((r) => RUNTIME(r[0]) && !/smile_factor_bg_relaxed\./.test(r[0]));
  const n = (v) => v.toLocaleString('en-US');
  const width = Math.max(...rows.map((r) => r[0].length), 24);
  const line = (a, ...cols) => `| ${a.padEnd(width)} |${cols.map((c) => ` ${c.padStart(11)} |`).join('')}`;
  const out = [line('file', 'bytes', 'gzip -9', 'brotli 11'), `|${'-'.repeat(width + 2)}|${`${'-'.repeat(13)}|`.repeat(3)}`];
  for (const [f, raw, gz, br] of rows) out.push(line(f, n(raw), n(gz), n(br)));
  out.push(line('total, what a page loads (one engine)', n(sum(runtime, 1)), n(sum(runtime, 2)), n(sum(runtime, 3))));
  out.push(line('total, the package', n(sum(rows, 1)), n(sum(rows, 2)), n(sum(rows, 3))));
  const integrity = sri(files.get(ENTRY));
  out.push('', `${ENTRY} integrity: ${integrity}`,
    `<script type="module" src="./pkg/${ENTRY}" integrity="${integrity}" crossorigin="anonymous"></script>`);
  return out.join('\n');
}

function parseArgs(argv) {
  const opts = { src: path.join(REPO, 'js'), models: path.join(REPO, 'models') };
  const usage = 'usage: node tools/package.mjs --engine DIR [--engine-relaxed DIR] --out DIR [--site DIR] [--src js] [--models models]';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      console.log(usage);
      process.exit(0);
    }
    const m = /^--(engine|engine-relaxed|out|site|src|models)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}\n${usage}`);
    const v = m[2] ?? argv[++i];
    if (!v) throw new Error(`${a} needs a value`);
    opts[m[1] === 'engine-relaxed' ? 'engineRelaxed' : m[1]] = path.resolve(v);
  }
  if (!opts.engine || !opts.out) throw new Error(usage);
  // `out` is deleted and recreated: refuse anything that could be a source directory.
  for (const k of ['out', 'site']) {
    const d = opts[k];
    if (d && (d === REPO || REPO.startsWith(d + path.sep) || [opts.src, opts.models, opts.engine, opts.engineRelaxed].includes(d))) {
      throw new Error(`--${k} ${d} would delete sources; pick an output directory of its own`);
    }
  }
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    const opts = parseArgs(process.argv.slice(2));
    const { files, packageJson } = await assemble(opts);
    const siblings = precompressed(files);
    await writePackage(new Map([...files, ...siblings]), opts.out);
    if (opts.site) {
      await rm(opts.site, { recursive: true, force: true });
      // Times kept: the server ignores a .br/.gz older than its file (server/src/statics.rs).
      await cp(opts.out, opts.site, { recursive: true, preserveTimestamps: true });
    }
    const where = [opts.out, opts.site].filter(Boolean).map((d) => path.relative(process.cwd(), d) || '.').join(' and ');
    console.log(`${packageJson.name}@${packageJson.version}: ${files.size} files in ${where}, `
      + `and a .br and a .gz of each of the ${siblings.size / 2} a page loads (not in the npm tarball)\n`);
    console.log(report(files, siblings));
  } catch (e) {
    console.error(`tools/package.mjs: ${e.message}`);
    process.exit(1);
  }
}
