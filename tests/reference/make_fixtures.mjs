// Cuts the test fixtures out of face-api's demo photos (MIT, shipped in the npm
// package @vladmandic/face-api@1.7.15 under demo/sample*.jpg).
//
// Usage:  cd tests/reference && npm ci && node make_fixtures.mjs
//
// Everything is pure JS (jpeg-js decode, own area-average resampling, pngjs
// encode) so the pixels are the same on every machine. Output PNGs are plain
// 8-bit RGB (colour type 2) with no gAMA/iCCP/sRGB/pHYs chunks.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.resolve(HERE, '..', 'fixtures');
const DEMO = path.join(HERE, 'node_modules', '@vladmandic', 'face-api', 'demo');

// rect = [x, y, width, height] in the source photo (pixels); out = [width, height].
// Crops are square, centred on face-api's TinyFaceDetector box for that face
// (side = the longer box side), scaled to 112x112.
export const CROPS = [
  { name: 'crops/smile_1.png', src: 'sample3.jpg', rect: [1016, 230, 301, 301], out: [112, 112], note: 'woman in black top (centre of the photo), broad smile' },
  { name: 'crops/smile_2.png', src: 'sample6.jpg', rect: [614, 392, 274, 274], out: [112, 112], note: 'woman in red dress (second from left), open smile showing teeth' },
  { name: 'crops/smile_3.png', src: 'sample1.jpg', rect: [1423, 202, 281, 281], out: [112, 112], note: 'blonde woman in paramedic costume (right), laughing, head tilted' },
  { name: 'crops/neutral_1.png', src: 'sample6.jpg', rect: [1126, 357, 263, 263], out: [112, 112], note: 'woman in striped jumpsuit (third from left), pursed lips' },
  { name: 'crops/neutral_2.png', src: 'sample3.jpg', rect: [546, 363, 252, 252], out: [112, 112], note: 'curly blonde woman (left), pursed lips; square 0.9x the detector box' },
  { name: 'crops/neutral_3.png', src: 'sample5.jpg', rect: [722, 113, 269, 269], out: [112, 112], note: 'woman in red top at the top of the stairs, closed mouth; square 1.3x the detector box' },
  { name: 'crops/sad_1.png', src: 'sample2.jpg', rect: [857, 266, 212, 212], out: [112, 112], note: 'woman in grey dress (centre), eyes down (face-api: sad)' },
  { name: 'crops/mixed_1.png', src: 'sample4.jpg', rect: [944, 214, 243, 243], out: [112, 112], note: 'dark-haired woman (third from left), eyes down, faint smile (face-api: neutral/happy split)' },
];

export const FRAMES = [
  { name: 'frames/sample1_640x480.png', src: 'sample1.jpg', rect: [0, 0, 1704, 1278], out: [640, 480], note: 'three women in costume; face-api finds 2 faces at inputSize 224/320 and 3 at 416' },
  { name: 'frames/sample6_640x480.png', src: 'sample6.jpg', rect: [560, 250, 1200, 900], out: [640, 480], note: 'three of the four women (red, striped, green dresses), 3 faces' },
  { name: 'frames/sample3_416x416.png', src: 'sample3.jpg', rect: [500, 180, 880, 880], out: [416, 416], note: 'curly blonde woman and woman in black top, 2 faces; used for raw detector-grid parity' },
];

function decodeJpeg(file) {
  const j = jpeg.decode(fs.readFileSync(file), { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
  return { width: j.width, height: j.height, rgb: j.data };
}

// Exact area-average (box filter with fractional pixel coverage) of the source
// rectangle onto an outW x outH grid. Deterministic: float64 arithmetic in a
// fixed order, round-half-up at the end.
function resampleArea(img, [rx, ry, rw, rh], [outW, outH]) {
  if (rx < 0 || ry < 0 || rx + rw > img.width || ry + rh > img.height) {
    throw new Error(`rect ${[rx, ry, rw, rh]} outside ${img.width}x${img.height}`);
  }
  const sx = rw / outW;
  const sy = rh / outH;
  const out = Buffer.alloc(outW * outH * 3);
  const spans = (start, step, n) => {
    const res = [];
    for (let o = 0; o < n; o++) {
      const a = start + o * step;
      const b = a + step;
      const parts = [];
      for (let p = Math.floor(a); p < b; p++) {
        const w = Math.min(b, p + 1) - Math.max(a, p);
        if (w > 1e-12) parts.push([p, w]);
      }
      res.push(parts);
    }
    return res;
  };
  const xs = spans(rx, sx, outW);
  const ys = spans(ry, sy, outH);
  for (let oy = 0; oy < outH; oy++) {
    for (let ox = 0; ox < outW; ox++) {
      let r = 0; let g = 0; let b = 0; let wsum = 0;
      for (const [py, wy] of ys[oy]) {
        for (const [px, wx] of xs[ox]) {
          const w = wx * wy;
          const i = (py * img.width + px) * 3;
          r += img.rgb[i] * w; g += img.rgb[i + 1] * w; b += img.rgb[i + 2] * w;
          wsum += w;
        }
      }
      const o = (oy * outW + ox) * 3;
      out[o] = Math.min(255, Math.floor(r / wsum + 0.5));
      out[o + 1] = Math.min(255, Math.floor(g / wsum + 0.5));
      out[o + 2] = Math.min(255, Math.floor(b / wsum + 0.5));
    }
  }
  return out;
}

function writePngRgb(file, width, height, rgb) {
  const png = new PNG({ width, height, colorType: 2, inputColorType: 2, inputHasAlpha: false, bitDepth: 8 });
  png.data = rgb;
  const buf = PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false, deflateLevel: 9, filterType: -1 });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, buf);
}

function pngChunks(buf) {
  const names = [];
  for (let off = 8; off < buf.length;) {
    const len = buf.readUInt32BE(off);
    names.push(buf.toString('latin1', off + 4, off + 8));
    off += 12 + len;
  }
  return names;
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  try {
    if (!fs.existsSync(DEMO)) throw new Error(`${DEMO} missing: run 'npm ci' in tests/reference first`);
    const cache = new Map();
    let total = 0;
    for (const f of [...CROPS, ...FRAMES]) {
      if (!cache.has(f.src)) cache.set(f.src, decodeJpeg(path.join(DEMO, f.src)));
      const img = cache.get(f.src);
      const rgb = resampleArea(img, f.rect, f.out);
      const file = path.join(FIXTURES, f.name);
      writePngRgb(file, f.out[0], f.out[1], rgb);
      const buf = fs.readFileSync(file);
      const chunks = pngChunks(buf);
      const bad = chunks.filter((c) => !['IHDR', 'IDAT', 'IEND'].includes(c));
      if (bad.length) throw new Error(`${file}: unexpected PNG chunks ${bad}`);
      if (buf[25] !== 2 || buf[24] !== 8) throw new Error(`${file}: not 8-bit RGB`);
      total += buf.length;
      console.log(`${f.name}  ${f.out[0]}x${f.out[1]}  from ${f.src} rect=${f.rect.join(',')}  ${buf.length} bytes`);
    }
    console.log(`total ${total} bytes`);
  } catch (e) {
    console.error(`ERROR: ${e.message}`);
    process.exit(1);
  }
}
