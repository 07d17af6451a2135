// Reference runner: runs the real face-api.js 1.7.15 (tfjs 4.22.0, wasm backend)
// in headless Debian Chromium on the fixtures and writes
// tests/fixtures/faceapi_reference.json.
//
// Usage:  cd tests/reference && npm ci && node run.mjs
//   (node make_fixtures.mjs first if the PNGs are missing)
//
// Images are passed to face-api as int32 HxWx3 tensors (tf.browser.fromPixels of
// the PNG, checked to equal the PNG bytes decoded in Node), so face-api takes its
// tensor path: padToSquare + tf.image.resizeBilinear(alignCorners=false,
// halfPixelCenters=false), never canvas drawImage scaling.
import fs from 'node:fs';
import path from 'node:path';
import { CROPS, FRAMES } from './make_fixtures.mjs';
import { withFaceApi, readPngRgb, FIXTURES, LABELS, withTimeout, die } from './harness.mjs';

const INPUT_SIZES = [224, 320, 416];
const SCORE_THRESHOLD = 0.5;
const MARGIN = 0.05; // no post-NMS detection score may lie within this of the threshold
const OUT = path.join(FIXTURES, 'faceapi_reference.json');
const GLOBAL_TIMEOUT_MS = 15 * 60 * 1000;

const watchdog = setTimeout(() => die(`run.mjs did not finish within ${GLOBAL_TIMEOUT_MS / 1000} s`), GLOBAL_TIMEOUT_MS);
watchdog.unref();

const fail = [];
const check = (cond, msg) => { if (!cond) fail.push(msg); };

async function main() {
  const all = [...CROPS, ...FRAMES];
  const decoded = new Map();
  for (const f of all) {
    const file = path.join(FIXTURES, f.name);
    if (!fs.existsSync(file)) die(`${file} missing: run 'node make_fixtures.mjs' first`);
    const img = readPngRgb(file);
    if (img.width !== f.out[0] || img.height !== f.out[1]) die(`${f.name} is ${img.width}x${img.height}, expected ${f.out.join('x')}`);
    decoded.set(f.name, img);
  }
  const squareFrames = FRAMES.filter((f) => f.out[0] === 416 && f.out[1] === 416);
  check(squareFrames.length === 1, `expected exactly one 416x416 frame, found ${squareFrames.length}`);
  if (!squareFrames.length) die('no 416x416 frame');
  const rawFrame = squareFrames[0];

  return withFaceApi(async ({ page, info, consoleErrors }) => {
    if (info.backend !== 'wasm') throw new Error(`backend is ${info.backend}, expected wasm`);
    const ev = (fn, arg, what) => withTimeout(page.evaluate(fn, arg), 180000, what);

    // 1. fromPixels must reproduce the PNG bytes exactly.
    for (const f of all) {
      const got = await ev(async (url) => {
        const t = await window.loadTensor(url);
        const d = await t.data();
        const res = { shape: t.shape, dtype: t.dtype };
        // chunked base64 (String.fromCharCode has an argument limit)
        const u8 = Uint8Array.from(d);
        let s = '';
        for (let i = 0; i < u8.length; i += 8192) s += String.fromCharCode(...u8.subarray(i, i + 8192));
        res.b64 = btoa(s);
        t.dispose();
        return res;
      }, `/fixtures/${f.name}`, `fromPixels ${f.name}`);
      const img = decoded.get(f.name);
      if (got.dtype !== 'int32' || got.shape.join() !== [img.height, img.width, 3].join()) {
        throw new Error(`fromPixels(${f.name}) gave ${got.dtype} ${got.shape}, expected int32 ${img.height},${img.width},3`);
      }
      const bytes = Buffer.from(got.b64, 'base64');
      if (!bytes.equals(img.rgb)) {
        let n = 0;
        for (let i = 0; i < bytes.length; i++) if (bytes[i] !== img.rgb[i]) n++;
        throw new Error(`fromPixels(${f.name}) differs from the PNG decoded in Node in ${n} of ${bytes.length} values`);
      }
    }
    console.log(`fromPixels == PNG bytes for all ${all.length} fixtures`);

    // 2. Expression net on the 112x112 crops.
    const crops = [];
    for (const f of CROPS) {
      const probs = await ev(async ({ url, labels }) => {
        const t = await window.loadTensor(url);
        const ex = await faceapi.nets.faceExpressionNet.predictExpressions(t);
        t.dispose();
        return labels.map((l) => ex[l]);
      }, { url: `/fixtures/${f.name}`, labels: LABELS }, `expressions ${f.name}`);
      crops.push({ file: f.name, expressions: probs });
    }

    // 3. Raw detector grid for the 416x416 frame at every input size.
    const detectorRaw = [];
    for (const inputSize of INPUT_SIZES) {
      const r = await ev(async ({ url, inputSize }) => {
        const t = await window.loadTensor(url);
        const out = await faceapi.nets.tinyFaceDetector.forward(t, inputSize);
        const data = Array.from(await out.data());
        const res = { shape: out.shape, data };
        out.dispose(); t.dispose();
        return res;
      }, { url: `/fixtures/${rawFrame.name}`, inputSize }, `detector raw ${inputSize}`);
      const cells = inputSize / 32;
      check(r.shape.join() === [1, cells, cells, 25].join(), `raw shape at ${inputSize} is ${r.shape}`);
      detectorRaw.push({ file: rawFrame.name, input_size: inputSize, layout: 'NHWC', shape: r.shape, data: r.data });
    }

    // 4. Full pipeline on every frame at every input size, plus a margin check
    //    (detections at threshold 0.3, none may score within MARGIN of 0.5).
    const frames = [];
    const margins = [];
    for (const f of FRAMES) {
      for (const inputSize of INPUT_SIZES) {
        const r = await ev(async ({ url, inputSize, thr, labels }) => {
          const t = await window.loadTensor(url);
          const run = async (scoreThreshold) => {
            const dets = await faceapi.detectAllFaces(t, new faceapi.TinyFaceDetectorOptions({ inputSize, scoreThreshold })).withFaceExpressions();
            return dets.map((d) => ({
              box: { x: d.detection.box.x, y: d.detection.box.y, width: d.detection.box.width, height: d.detection.box.height },
              score: d.detection.score,
              expressions: labels.map((l) => d.expressions[l]),
            }));
          };
          const faces = await run(thr);
          const low = await run(0.3);
          t.dispose();
          return { faces, lowScores: low.map((d) => d.score) };
        }, { url: `/fixtures/${f.name}`, inputSize, thr: SCORE_THRESHOLD, labels: LABELS }, `detect ${f.name} @${inputSize}`);
        r.faces.sort((a, b) => (a.box.x - b.box.x) || (a.box.y - b.box.y));
        const near = r.lowScores.filter((s) => Math.abs(s - SCORE_THRESHOLD) < MARGIN);
        check(near.length === 0, `${f.name} @${inputSize}: detection score(s) ${near} within ${MARGIN} of ${SCORE_THRESHOLD}`);
        margins.push(Math.min(...r.lowScores.map((s) => Math.abs(s - SCORE_THRESHOLD))));
        frames.push({
          file: f.name, width: f.out[0], height: f.out[1], input_size: inputSize, score_threshold: SCORE_THRESHOLD, faces: r.faces,
        });
      }
    }

    const out = {
      generator: 'tests/reference/run.mjs',
      face_api_version: info.face_api_version,
      tfjs_version: info.tfjs_version,
      backend: info.backend,
      chromium: info.chromium,
      backend_details: {
        wasm_simd: info.wasm_simd,
        wasm_multithread: info.wasm_multithread,
        wasm_threads: info.wasm_threads,
        cross_origin_isolated: info.cross_origin_isolated,
      },
      labels: LABELS,
      crops,
      detector_raw: detectorRaw,
      frames,
    };

    // Sanity checks on content.
    check(out.face_api_version === '1.7.15', `face-api version ${out.face_api_version}`);
    for (const c of crops) {
      const [neutral, happy] = c.expressions;
      const sum = c.expressions.reduce((a, b) => a + b, 0);
      check(Math.abs(sum - 1) < 1e-4, `${c.file}: probabilities sum to ${sum}`);
      if (/smile_/.test(c.file)) check(happy > 0.9, `${c.file}: happy=${happy}, expected > 0.9`);
      if (/neutral_/.test(c.file)) check(neutral > 0.7 || happy < 0.05, `${c.file}: neutral=${neutral} happy=${happy}`);
    }
    for (const fr of frames) {
      if (fr.input_size === 416) check(fr.faces.length >= 2, `${fr.file} @416: ${fr.faces.length} faces, expected >= 2`);
    }
    if (consoleErrors.length) console.warn(`page console errors:\n  ${consoleErrors.join('\n  ')}`);

    // Summary.
    console.log(`backend=${out.backend} tfjs=${out.tfjs_version} face-api=${out.face_api_version} chromium=${out.chromium} ${JSON.stringify(out.backend_details)}`);
    for (const c of crops) {
      const best = c.expressions.map((p, i) => [p, LABELS[i]]).sort((a, b) => b[0] - a[0])[0];
      console.log(`  ${c.file}: ${best[1]} ${best[0].toFixed(4)}  (happy ${c.expressions[1].toFixed(4)}, neutral ${c.expressions[0].toFixed(4)})`);
    }
    for (const fr of frames) {
      const scores = fr.faces.map((d) => d.score.toFixed(3)).join(' ');
      console.log(`  ${fr.file} @${fr.input_size}: ${fr.faces.length} faces [${scores}]`);
    }
    console.log(`  smallest |score - ${SCORE_THRESHOLD}| over detections at threshold 0.3: ${Math.min(...margins).toFixed(3)}`);

    if (fail.length) throw new Error(`sanity checks failed:\n  ${fail.join('\n  ')}`);
    // One line per number array keeps the file small and diffable.
    const text = JSON.stringify(out, null, 1).replace(/\[\s*(-?\d[-+\d.eE,\s]*?)\s*\]/g, (_, body) => `[${body.split(/,\s*/).join(', ')}]`);
    if (JSON.stringify(JSON.parse(text)) !== JSON.stringify(out)) throw new Error('JSON formatting changed the data');
    fs.writeFileSync(OUT, `${text}\n`);
    console.log(`wrote ${path.relative(process.cwd(), OUT)} (${fs.statSync(OUT).size} bytes)`);
  });
}

main().then(() => process.exit(0), (e) => die(e && e.stack ? e.stack : String(e)));
