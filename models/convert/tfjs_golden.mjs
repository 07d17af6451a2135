// Optional cross-check: run the ORIGINAL face-api (tfjs, CPU backend) on
// deterministic pseudo-random pixel images and save its raw outputs, so
// verify.py --tfjs-golden DIR can compare the ONNX graphs against them.
//
// Usage: node models/convert/tfjs_golden.mjs PACKAGE_DIR OUT_DIR
//   PACKAGE_DIR = root of the unpacked @vladmandic/face-api@1.7.15 npm package
//   (dist/face-api.esm.js bundles tfjs, so no npm install is needed).
// The package's dist/face-api.esm.js asks its bundled `util` stub for
// TextEncoder under Node; we load a copy with that one reference pointed at
// Node's real util module. Nothing else in the bundle is changed.
import fs from 'fs';
import path from 'path';
import util from 'util';

const [pkg, out] = process.argv.slice(2);
if (!pkg || !out) { console.error('usage: node tfjs_golden.mjs PACKAGE_DIR OUT_DIR'); process.exit(2); }
fs.mkdirSync(out, { recursive: true });
const src = fs.readFileSync(path.join(pkg, 'dist/face-api.esm.js'), 'utf8');
if (!src.includes('this.util=AR()')) throw new Error('unexpected bundle; patch point not found');
const patched = path.join(out, 'face-api.patched.esm.js');
fs.writeFileSync(patched, src.replace('this.util=AR()', 'this.util=globalThis.__nodeutil'));
globalThis.__nodeutil = util;
const faceapi = await import(path.resolve(patched));
const { tf } = faceapi;
await tf.setBackend('cpu');
await tf.ready();

function load(net, base) {
  const dir = path.join(pkg, 'model');
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, `${base}-weights_manifest.json`)));
  const map = {};
  for (const group of manifest) {
    const buf = Buffer.concat(group.paths.map((p) => fs.readFileSync(path.join(dir, p))));
    Object.assign(map, tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), group.weights));
  }
  net.loadFromWeightMap(map);
}

// xorshift32 pixels in [0, 255], NHWC.
let state = 0x12345678;
function pixels(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    state ^= state << 13; state >>>= 0; state ^= state >>> 17; state ^= state << 5; state >>>= 0;
    a[i] = state % 256;
  }
  return a;
}
const save = (name, arr) => fs.writeFileSync(path.join(out, name), Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength));

const det = new faceapi.TinyFaceDetector();
load(det, 'tiny_face_detector_model');
for (const size of [224, 320, 416]) {
  const px = pixels(size * size * 3);
  save(`det_px_${size}.f32`, px);
  // NetInput.toBatchTensor(size) is the identity for a size x size image; forwardInput
  // then subtracts MEAN_RGB, divides by 255 and runs the net (NHWC output).
  const y = det.forwardInput(await faceapi.toNetInput(tf.tensor4d(px, [1, size, size, 3])), size);
  save(`det_out_${size}.f32`, y.dataSync());
  console.log('detector', size, y.shape);
}
const expr = new faceapi.FaceExpressionNet();
load(expr, 'face_expression_model');
const px = pixels(112 * 112 * 3);
save('expr_px.f32', px);
const p = expr.forwardInput(await faceapi.toNetInput(tf.tensor4d(px, [1, 112, 112, 3])));
save('expr_out.f32', p.dataSync());
console.log('expression', p.shape, Array.from(p.dataSync()));
