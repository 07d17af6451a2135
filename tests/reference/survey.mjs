// Helper (not needed to regenerate anything): runs face-api on the full demo
// samples (decoded with jpeg-js, passed as tensors) and prints face boxes and
// expressions, which is how the crop rectangles in make_fixtures.mjs were chosen.
// Usage: node survey.mjs [inputSize=608]
import fs from 'node:fs';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { withFaceApi, FACEAPI_DIR, LABELS, withTimeout } from './harness.mjs';

const inputSize = Number(process.argv[2] || 608);
await withFaceApi(async ({ page, info }) => {
  console.log(JSON.stringify(info));
  for (let i = 1; i <= 6; i++) {
    const j = jpeg.decode(fs.readFileSync(path.join(FACEAPI_DIR, 'demo', `sample${i}.jpg`)), { useTArray: true, formatAsRGBA: false });
    const res = await withTimeout(page.evaluate(async ({ b64, w, h, inputSize }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const t = tf.tensor3d(Int32Array.from(bytes), [h, w, 3], 'int32');
      const r = await faceapi.detectAllFaces(t, new faceapi.TinyFaceDetectorOptions({ inputSize, scoreThreshold: 0.3 })).withFaceExpressions();
      t.dispose();
      return r.map((d) => ({ box: d.detection.box.toJSON ? d.detection.box.toJSON() : { x: d.detection.box.x, y: d.detection.box.y, width: d.detection.box.width, height: d.detection.box.height }, score: d.detection.score, ex: Object.values(d.expressions) }));
    }, { b64: Buffer.from(j.data).toString('base64'), w: j.width, h: j.height, inputSize }), 120000, 'survey');
    res.sort((a, b) => a.box.x - b.box.x);
    for (const f of res) {
      const top = f.ex.map((p, k) => [p, LABELS[k]]).sort((a, b) => b[0] - a[0]).slice(0, 2).map(([p, l]) => `${l}=${p.toFixed(3)}`).join(' ');
      console.log(`sample${i} score=${f.score.toFixed(3)} box=(${f.box.x.toFixed(0)},${f.box.y.toFixed(0)},${f.box.width.toFixed(0)},${f.box.height.toFixed(0)}) ${top}`);
    }
  }
});
