// Micro-benchmarks on the main thread of one bench page holding both engines, driven by
// bench/run.mjs. Both engines get the same pixels: raw RGBA files that run.mjs decoded from
// the fixture PNGs (ours takes the bytes, face-api an int32 tensor of the same RGB values).
// Every call is timed with performance.now() around the awaited call, results included,
// and the two engines' calls alternate one by one, so that background load and the
// machine's fast and slow spells hit both alike.

const ENGINES = ['ours', 'faceapi'];
// The same one-pixel vertical sway as the fake-camera videos (tests/e2e/y4m.mjs frames()).
const SWAY = [0, 1, 2, 1, 0, -1];

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** The frame moved down by `shift` rows, edge rows repeated. */
function shifted(img, shift) {
  const row = img.width * 4;
  const data = new Uint8Array(img.data.length);
  for (let y = 0; y < img.height; y++) {
    const sy = Math.min(img.height - 1, Math.max(0, y - shift));
    data.set(img.data.subarray(sy * row, (sy + 1) * row), y * row);
  }
  return { ...img, data };
}

const pause = () => new Promise((r) => setTimeout(r, 0));

/**
 * Runs `fn(engine, i)` for both engines: `warmup` times each untimed, then `n` times each
 * timed, the engines alternating call by call (ours first on even i, face-api first on
 * odd i, so neither always follows the other); yields to the event loop between calls (as
 * a frame loop would). Returns, per engine, the per-call times in ms and the results.
 */
async function timeCalls(n, warmup, fn) {
  for (let i = 0; i < warmup; i++) {
    for (const e of ENGINES) {
      await fn(e, i);
      await pause();
    }
  }
  const res = Object.fromEntries(ENGINES.map((e) => [e, { ms: [], out: [] }]));
  for (let i = 0; i < n; i++) {
    for (const e of i % 2 ? [...ENGINES].reverse() : ENGINES) {
      const t0 = performance.now();
      const r = await fn(e, i);
      res[e].ms.push(performance.now() - t0);
      res[e].out.push(r);
      await pause();
    }
  }
  return res;
}

/** `timeCalls`'s times only, per engine. */
const times = (r) => Object.fromEntries(ENGINES.map((e) => [e, r[e].ms]));

// js/smile-factor.js's probe: a function running f32x4.relaxed_madd, valid only with relaxed SIMD.
const V128_ZERO = [0xfd, 0x0c, ...new Array(16).fill(0)];
const PROBE_BODY = [0x00, ...V128_ZERO, ...V128_ZERO, ...V128_ZERO, 0xfd, 0x85, 0x02, 0x0b];
const RELAXED_PROBE = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00, 0x0a, PROBE_BODY.length + 2, 0x01, PROBE_BODY.length, ...PROBE_BODY]);

/** The engine under test, behind one small interface. */
async function loadOurs(files) {
  const mod = await import(files.glue);
  // The engine file the page itself would pick (js/smile-factor.js): relaxed SIMD if valid.
  const relaxed = !!files.wasmRelaxed && WebAssembly.validate(RELAXED_PROBE);
  await mod.default({ module_or_path: relaxed ? files.wasmRelaxed : files.wasm });
  const [det, expr] = await Promise.all([fetchBytes(files.detector), fetchBytes(files.expression)]);
  const analyzers = new Map();
  const analyzer = (inputSize) => {
    if (!analyzers.has(inputSize)) analyzers.set(inputSize, new mod.FaceAnalyzer(det, expr, { inputSize }));
    return analyzers.get(inputSize);
  };
  const hasDetect = typeof mod.FaceAnalyzer.prototype.detect === 'function';
  const hasTracker = typeof mod.FaceTracker === 'function';
  let tracker = null;
  const faceCount = (r) => (Array.isArray(r) ? r.length : null);
  return {
    info: { hasDetect, hasTracker, relaxedSimd: relaxed, exports: Object.keys(mod).sort() },
    input: (img) => img.data,
    // One run of the expression net (the crop as it is), as face-api's predictExpressions.
    happy: (crop) => analyzer(224).classifyFace(crop.data, crop.width, crop.height, { mirror: false }).happy,
    // classifyFace's default: the smile score averaged over the crop and its mirror, two runs.
    happyMirrored: (crop) => analyzer(224).classifyFace(crop.data, crop.width, crop.height).happy,
    detect(img, inputSize) {
      const a = analyzer(inputSize);
      // Until .detect() exists, analyze (detect + expressions) stands in; run.mjs marks the row.
      return faceCount(hasDetect ? a.detect(img.data, img.width, img.height) : a.analyze(img.data, img.width, img.height));
    },
    analyze(img, inputSize) {
      return faceCount(analyzer(inputSize).analyze(img.data, img.width, img.height));
    },
    newPipeline() {
      // Until FaceTracker exists, analyze at 224 on every frame stands in; run.mjs marks the row.
      if (!hasTracker) return (img) => ({ detected: true, faces: faceCount(analyzer(224).analyze(img.data, img.width, img.height)) });
      if (tracker && tracker.free) tracker.free();
      tracker = new mod.FaceTracker(det, expr, { inputSize: 224 });
      return (img) => {
        const r = tracker.step(img.data, img.width, img.height);
        return { detected: !!r.detected, faces: r.boxes ? r.boxes.length : null };
      };
    },
  };
}

async function loadFaceApi() {
  const faceapi = await import('./faceapi/face-api.esm.js');
  const tf = faceapi.tf;
  // No COOP/COEP from the server, so no SharedArrayBuffer and no threads: what a normal page gets.
  tf.setWasmPaths(new URL('./faceapi/wasm/', location.href).href);
  if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") failed');
  await tf.ready();
  await faceapi.nets.tinyFaceDetector.loadFromUri('./faceapi/model');
  await faceapi.nets.faceExpressionNet.loadFromUri('./faceapi/model');
  const info = {
    backend: tf.getBackend(),
    tfjs: tf.version_core,
    faceapi: faceapi.version,
    wasmSimd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
    wasmMultithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
    threads: tf.getThreadsCount ? tf.getThreadsCount() : null,
    crossOriginIsolated: self.crossOriginIsolated,
  };
  const tensors = new Map();
  const tensorOf = (img) => {
    if (!tensors.has(img)) {
      const rgb = new Int32Array(img.width * img.height * 3);
      for (let i = 0, j = 0; i < img.data.length; i += 4, j += 3) {
        rgb[j] = img.data[i]; rgb[j + 1] = img.data[i + 1]; rgb[j + 2] = img.data[i + 2];
      }
      tensors.set(img, tf.tensor3d(rgb, [img.height, img.width, 3], 'int32'));
    }
    return tensors.get(img);
  };
  const options = (inputSize) => new faceapi.TinyFaceDetectorOptions({ inputSize, scoreThreshold: 0.5 });
  return {
    info,
    tf,
    // Tensors are made once per image, outside the timed calls.
    input: tensorOf,
    happy: async (crop) => (await faceapi.nets.faceExpressionNet.predictExpressions(tensorOf(crop))).happy,
    // face-api has no mirror averaging: its one call is the peer of both rows.
    happyMirrored: async (crop) => (await faceapi.nets.faceExpressionNet.predictExpressions(tensorOf(crop))).happy,
    detect: async (img, inputSize) => (await faceapi.detectAllFaces(tensorOf(img), options(inputSize))).length,
    analyze: async (img, inputSize) => (await faceapi.detectAllFaces(tensorOf(img), options(inputSize)).withFaceExpressions()).length,
    newPipeline: () => async (img) => ({
      detected: true,
      faces: (await faceapi.detectAllFaces(tensorOf(img), options(224)).withFaceExpressions()).length,
    }),
  };
}

let engines;
let inputs;
let pipelines;

window.bench = {
  /**
   * Loads both engines and the inputs: `manifest` = {crops, frames: raw RGBA files with
   * their sizes, ours: {glue, detector, expression}: URLs of our package and models}.
   * Returns each engine's info.
   */
  async setup(manifest) {
    engines = { ours: await loadOurs(manifest.ours), faceapi: await loadFaceApi() };
    const load = async (f) => ({ name: f.name, width: f.width, height: f.height, data: await fetchBytes(`./inputs/${f.file}`) });
    const crops = await Promise.all(manifest.crops.map(load));
    const frames = await Promise.all(manifest.frames.map(load));
    // Per 640x480 frame, its six swayed copies: a short steady "video" of one scene.
    const sequence = frames.map((f) => SWAY.map((s) => shifted(f, s)));
    inputs = { crops, frames, sequence };
    for (const engine of Object.values(engines)) {
      for (const img of [...crops, ...frames, ...sequence.flat()]) engine.input(img);
    }
    document.getElementById('status').textContent = 'ready';
    return { ours: engines.ours.info, faceapi: engines.faceapi.info };
  },

  /** What each engine answers, for run.mjs to check both measured the same work. */
  async answers() {
    const out = {};
    for (const [name, engine] of Object.entries(engines)) {
      const crops = [];
      for (const c of inputs.crops) crops.push({ name: c.name, happy: await engine.happy(c) });
      const faces = [];
      for (const f of inputs.frames) {
        for (const size of [224, 320, 416]) faces.push({ name: f.name, size, detect: await engine.detect(f, size), analyze: await engine.analyze(f, size) });
      }
      out[name] = { crops, faces };
    }
    return out;
  },

  /** (a) The expression net on one 112x112 crop, one run, cycling through the crops. */
  crop: (n, warmup, offset = 0) =>
    timeCalls(n, warmup, (e, i) => engines[e].happy(inputs.crops[(offset + i) % inputs.crops.length])).then(times),

  /** (a') classifyFace as a crop classifier calls it: ours averages the crop and its mirror. */
  cropMirrored: (n, warmup, offset = 0) =>
    timeCalls(n, warmup, (e, i) => engines[e].happyMirrored(inputs.crops[(offset + i) % inputs.crops.length])).then(times),

  /** (b) The detector alone at `inputSize` on the 640x480 frames, alternating. */
  detector: (inputSize, n, warmup, offset = 0) =>
    timeCalls(n, warmup, (e, i) => engines[e].detect(inputs.frames[(offset + i) % inputs.frames.length], inputSize)).then(times),

  /** (c') Detect, then the expressions of every face, on every frame (face-api's withFaceExpressions). */
  analyze: (inputSize, n, warmup, offset = 0) =>
    timeCalls(n, warmup, (e, i) => engines[e].analyze(inputs.frames[(offset + i) % inputs.frames.length], inputSize)).then(times),

  /** A fresh per-frame pipeline per engine (ours: a FaceTracker, which keeps state between frames). */
  startPipeline() {
    pipelines = { ours: engines.ours.newPipeline(), faceapi: engines.faceapi.newPipeline() };
  },

  /**
   * (c) The per-frame pipeline over the swayed sequences: `n` frames of scene `scene`
   * (the swayed copies in order, looping), after `warmup` frames of the same scene.
   */
  pipeline: (scene, n, warmup) => {
    const seq = inputs.sequence[scene % inputs.sequence.length];
    return timeCalls(n, warmup, (e, i) => pipelines[e](seq[i % seq.length])).then((r) => Object.fromEntries(ENGINES.map((e) => [e, {
      ms: r[e].ms,
      detected: r[e].out.map((o) => o.detected),
      faces: r[e].out.map((o) => o.faces),
    }])));
  },

  /** tfjs tensors alive (face-api's): a leak would make later calls slower. */
  tensors: () => engines.faceapi.tf.memory().numTensors,
};
window.benchReady = true;
