// Fake-camera videos for Chromium (--use-file-for-fake-video-capture): YUV4MPEG2 files
// built from the committed fixture PNGs, no ffmpeg. Chromium loops the file.

import { readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pngjs from 'pngjs';

const { PNG } = pngjs;

/** {width, height, data: RGBA Uint8Array} */
export function readPng(file) {
  const png = PNG.sync.read(readFileSync(file));
  return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length) };
}

/** A width x height RGBA canvas filled with `rgb`, or a vertical gradient between two colours. */
export function canvas(width, height, top = [128, 128, 128], bottom = top) {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    const t = height > 1 ? y / (height - 1) : 0;
    const c = top.map((v, i) => Math.round(v + (bottom[i] - v) * t));
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      data[o] = c[0];
      data[o + 1] = c[1];
      data[o + 2] = c[2];
      data[o + 3] = 255;
    }
  }
  return { width, height, data };
}

/** Output index `i` scaled by `scale` from a source axis of length `n`: two taps and a weight. */
function tap(i, scale, n) {
  const s = Math.min(n - 1, Math.max(0, (i + 0.5) / scale - 0.5));
  const lo = Math.floor(s);
  return [lo, Math.min(n - 1, lo + 1), s - lo];
}

/** Bilinear-scales `src` by `scale` and draws it centred at (cx, cy) onto `dst` (in place). */
export function drawScaled(dst, src, scale, cx = dst.width / 2, cy = dst.height / 2) {
  const w = Math.round(src.width * scale);
  const h = Math.round(src.height * scale);
  const x0 = Math.round(cx - w / 2);
  const y0 = Math.round(cy - h / 2);
  for (let y = 0; y < h; y++) {
    const dy = y0 + y;
    if (dy < 0 || dy >= dst.height) continue;
    const [sy0, sy1, fy] = tap(y, scale, src.height);
    for (let x = 0; x < w; x++) {
      const dx = x0 + x;
      if (dx < 0 || dx >= dst.width) continue;
      const [sx0, sx1, fx] = tap(x, scale, src.width);
      const o = (dy * dst.width + dx) * 4;
      for (let c = 0; c < 3; c++) {
        const p = (yy, xx) => src.data[(yy * src.width + xx) * 4 + c];
        const top = p(sy0, sx0) * (1 - fx) + p(sy0, sx1) * fx;
        const bot = p(sy1, sx0) * (1 - fx) + p(sy1, sx1) * fx;
        dst.data[o + c] = Math.round(top * (1 - fy) + bot * fy);
      }
      dst.data[o + 3] = 255;
    }
  }
  return dst;
}

const clamp = (v) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

/** RGBA -> planar I420 (BT.601, studio range, as Chromium's capture pipeline assumes). */
export function rgbaToI420({ width, height, data }) {
  if (width % 2 || height % 2) throw new Error('I420 needs even dimensions');
  const ySize = width * height;
  const cw = width / 2;
  const ch = height / 2;
  const out = new Uint8Array(ySize + 2 * cw * ch);
  for (let i = 0; i < ySize; i++) {
    const r = data[i * 4], g = data[i * 4 + 1], b = data[i * 4 + 2];
    out[i] = clamp(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255);
  }
  const U = ySize;
  const V = ySize + cw * ch;
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      let r = 0, g = 0, b = 0;
      for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
        const o = ((2 * y + dy) * width + 2 * x + dx) * 4;
        r += data[o];
        g += data[o + 1];
        b += data[o + 2];
      }
      r /= 4; g /= 4; b /= 4;
      out[U + y * cw + x] = clamp(128 + (-37.797 * r - 74.203 * g + 112 * b) / 255);
      out[V + y * cw + x] = clamp(128 + (112 * r - 93.786 * g - 18.214 * b) / 255);
    }
  }
  return out;
}

/** Writes a YUV4MPEG2 (C420jpeg) file of the given RGBA frames, `fps` frames per second. */
export async function writeY4m(file, frames, fps = 30) {
  const { width, height } = frames[0];
  const header = Buffer.from(`YUV4MPEG2 W${width} H${height} F${fps}:1 Ip A1:1 C420jpeg\n`, 'ascii');
  const parts = [header];
  for (const f of frames) {
    if (f.width !== width || f.height !== height) throw new Error('all frames must have the same size');
    parts.push(Buffer.from('FRAME\n', 'ascii'), rgbaToI420(f));
  }
  await mkdir(path.dirname(file), { recursive: true });
  // Atomic: a browser started by a parallel test file never reads a half-written video.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, Buffer.concat(parts));
  await rename(tmp, file);
  return file;
}

export const W = 640;
export const H = 480;
const BACKGROUND = [[150, 156, 160], [118, 122, 128]]; // soft grey-blue gradient, no structure

/**
 * A scene (640x480 unless told): the 112x112 crop scaled up and centred on a neutral
 * background. Other sizes are other cameras (a portrait phone's 480x640, a small 320x240).
 */
export function faceScene(cropPng, scale = 3.2, width = W, height = H) {
  const bg = canvas(width, height, ...BACKGROUND);
  return drawScaled(bg, readPng(cropPng), scale, width / 2, height / 2);
}

export function emptyScene(width = W, height = H) {
  return canvas(width, height, ...BACKGROUND);
}

/**
 * `n` frames of a scene with a one-pixel sway, so the stream is not a frozen picture
 * (the page counts identical frames for over a second as no face). The cycle is 7 frames
 * long, a prime, so that no analysis rate the page allows (5..60 a second, sampling a
 * 30 fps camera) keeps landing on the same frame. The sway keeps the face centred.
 */
const SWAY = [0, 1, 2, 1, 0, -1, -2];
export function frames(scene, n = SWAY.length) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const shift = SWAY[i % SWAY.length];
    const f = { width: scene.width, height: scene.height, data: new Uint8Array(scene.data.length) };
    const rowBytes = scene.width * 4;
    for (let y = 0; y < scene.height; y++) {
      const sy = Math.min(scene.height - 1, Math.max(0, y - shift));
      f.data.set(scene.data.subarray(sy * rowBytes, (sy + 1) * rowBytes), y * rowBytes);
    }
    out.push(f);
  }
  return out;
}
