// The face-api.js challenge page: load face-api 1.7.15 with tfjs's wasm backend (SIMD, one
// thread: the server sends no COOP/COEP), wait for Start, open the camera, then run
// detectAllFaces(video, TinyFaceDetectorOptions({inputSize: 224})).withFaceExpressions()
// on the main thread, one call per animation frame, for `?duration=` seconds (default 15),
// reading the largest face's happy score. A smile ends the challenge as on our page: the
// first frame with happy >= 0.5, held on every analysed frame for 300 ms (the prototype's rule).
import * as faceapi from './faceapi/face-api.esm.js';

const tf = faceapi.tf;
const root = document.documentElement;
const $ = (id) => document.getElementById(id);
const seconds = Number(new URLSearchParams(location.search).get('duration') ?? 15);
const DURATION_MS = (Number.isFinite(seconds) && seconds > 0 ? seconds : 15) * 1000;
const options = new faceapi.TinyFaceDetectorOptions({ inputSize: 224, scoreThreshold: 0.5 });
const THRESHOLD = 0.5;
const HOLD_MS = 300;
const nextFrame = () => new Promise((r) => requestAnimationFrame(r));

function fail(error) {
  console.error('face-api page:', error);
  root.dataset.phase = 'error';
  $('status').textContent = `Error: ${error && error.message ? error.message : error}`;
}

async function load() {
  tf.setWasmPaths(new URL('./faceapi/wasm/', location.href).href);
  if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") failed');
  await tf.ready();
  await Promise.all([
    faceapi.nets.tinyFaceDetector.loadFromUri('./faceapi/model'),
    faceapi.nets.faceExpressionNet.loadFromUri('./faceapi/model'),
  ]);
  root.dataset.wasmSimd = String(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  root.dataset.wasmMultithread = String(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
  root.dataset.backend = tf.getBackend();
  $('status').textContent = 'Press Start and keep a straight face.';
  root.dataset.phase = 'start';
  $('start').disabled = false;
}

async function challenge() {
  $('start').disabled = true;
  root.dataset.phase = 'loading';
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 480, facingMode: 'user' },
    audio: false,
  });
  const video = $('selfview');
  video.srcObject = stream;
  video.play().catch(() => {});
  root.dataset.phase = 'challenge';
  const t0 = performance.now();
  let frames = 0;
  let smiled = false;
  let smileSince = null;
  while (!smiled && performance.now() - t0 < DURATION_MS) {
    // No frame yet: nothing to analyse, not counted (as on our page).
    if (video.readyState >= 2) {
      const grabbed = performance.now();
      const faces = await faceapi.detectAllFaces(video, options).withFaceExpressions();
      frames += 1;
      if (frames === 1) performance.mark('smile-factor:first-analysis');
      const area = (f) => f.detection.box.width * f.detection.box.height;
      const largest = faces.reduce((a, f) => (!a || area(f) > area(a) ? f : a), null);
      const happy = largest ? largest.expressions.happy : 0;
      $('smile-meter').value = happy;
      if (happy >= THRESHOLD) {
        smileSince ??= grabbed;
        smiled = grabbed - smileSince >= HOLD_MS;
      } else {
        smileSince = null;
      }
    }
    $('countdown').textContent = `${Math.ceil((DURATION_MS - (performance.now() - t0)) / 1000)} s`;
    await nextFrame();
  }
  const elapsed = performance.now() - t0;
  for (const track of stream.getTracks()) track.stop();
  video.srcObject = null;
  root.dataset.framesAnalysed = String(frames);
  root.dataset.analysisFps = (frames * 1000 / elapsed).toFixed(1);
  root.dataset.notsmiling = String(!smiled);
  if (smiled) root.dataset.reason = 'smiled';
  $('status').textContent = smiled ? 'You smiled.' : 'No smile.';
  root.dataset.phase = 'result';
}

$('start').addEventListener('click', () => challenge().catch(fail));
load().catch(fail);
