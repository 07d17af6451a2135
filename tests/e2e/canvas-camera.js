// TEST ONLY, never shipped: a camera made of a canvas, for engines whose fake camera
// cannot play a file (Firefox, WebKit). tools/serve.mjs's `inject` option serves it as
// /__e2e/canvas-camera.js and loads it first in <head> (same origin: the page's
// script-src 'self' allows it). It replaces getUserMedia with canvas.captureStream(fps)
// of a fixture face drawn as tests/e2e/y4m.mjs draws its scenes: the 112x112 crop scaled
// 3.2x, centred on a grey-blue gradient, swaying by a pixel so the frames are not frozen.
//
//   __smileFakeCamera.show('neutral' | 'smile' | 'empty' | 'neutral_2' | ...)  what it films
//   __smileFakeCamera.fill([r, g, b])   a flat colour (channel-order checks)
//   __smileFakeCamera.auto({ selector, then: 'smile', otherwise: 'neutral' })
//                                       `then` while the element is shown (prompt tests)
//   __smileFakeCamera.end()             stop every track it handed out (camera_lost)
//   __smileFakeCamera.tracks            the live tracks it handed out
// A query parameter `e2e-camera=NAME` on the page URL picks the first scene (default neutral).
(() => {
  'use strict';
  const FPS = 30;
  const W = 640;
  const H = 480;
  const SCALE = 3.2;
  const SWAY = [0, 1, 2, 1, 0, -1, -2]; // 7-frame cycle, as y4m.mjs
  const FACES = { neutral: 'neutral_1', smile: 'smile_1', empty: null };
  const faceOf = (name) => (name in FACES ? FACES[name] : name);
  const facePath = (name) => `/__e2e/faces/${encodeURIComponent(name)}.png`;

  const canvas = document.createElement('canvas');
  canvas.width = W;
  canvas.height = H;
  const ctx = canvas.getContext('2d');
  const images = new Map(); // crop name -> HTMLImageElement (loaded)
  const tracks = [];
  let scene = { face: FACES.neutral };
  let autoRule = null;
  let tick = 0;
  let timer = null;

  function image(name) {
    if (!images.has(name)) {
      const img = new Image();
      img.src = facePath(name);
      images.set(name, img);
    }
    return images.get(name);
  }

  // Each scene is drawn once into its own canvas; a frame is one blit of it, shifted by
  // the sway (cheap: the main thread also runs the page, and WebKit under Xvfb paints in
  // software).
  const rendered = new Map(); // scene key -> canvas
  function render(current) {
    const key = current.fill ? `fill:${current.fill}` : `face:${current.face}`;
    if (rendered.has(key)) return rendered.get(key);
    const c = document.createElement('canvas');
    c.width = W;
    c.height = H;
    const g = c.getContext('2d');
    if (current.fill) {
      const [r, gr, b] = current.fill;
      g.fillStyle = `rgb(${r}, ${gr}, ${b})`;
      g.fillRect(0, 0, W, H);
      // A line of another colour, so that the sway shows: not a frozen picture.
      g.fillStyle = `rgb(${(r + 64) % 256}, ${gr}, ${b})`;
      g.fillRect(0, H - 8, W, 1);
      rendered.set(key, c);
      return c;
    }
    const grad = g.createLinearGradient(0, 0, 0, H);
    grad.addColorStop(0, 'rgb(150, 156, 160)');
    grad.addColorStop(1, 'rgb(118, 122, 128)');
    g.fillStyle = grad;
    g.fillRect(0, 0, W, H);
    if (current.face) {
      const img = image(current.face);
      // Not loaded yet: draw the background now, keep the face for a later frame.
      if (!img.complete || !img.naturalWidth) return c;
      const w = Math.round(img.naturalWidth * SCALE);
      const h = Math.round(img.naturalHeight * SCALE);
      g.drawImage(img, Math.round((W - w) / 2), Math.round((H - h) / 2), w, h);
    } else {
      // The empty scene sways too: a faint line, not a face.
      g.fillStyle = 'rgb(140, 146, 150)';
      g.fillRect(0, H / 2, W, 1);
    }
    rendered.set(key, c);
    return c;
  }

  function draw() {
    let current = scene;
    if (autoRule) {
      const el = document.querySelector(autoRule.selector);
      const shown = !!el && el.offsetParent !== null && getComputedStyle(el).visibility !== 'hidden';
      current = { face: faceOf(shown ? autoRule.then : autoRule.otherwise) };
    }
    const shift = SWAY[tick++ % SWAY.length];
    ctx.drawImage(render(current), 0, shift);
  }

  function ensureRunning() {
    if (timer === null) timer = setInterval(draw, 1000 / FPS);
    draw();
  }

  function stream() {
    ensureRunning();
    const s = canvas.captureStream(FPS);
    for (const t of s.getVideoTracks()) tracks.push(t);
    return s;
  }

  const initial = new URLSearchParams(location.search).get('e2e-camera');
  if (initial) scene = { face: faceOf(initial) };
  // Start loading the crops before Start is pressed.
  for (const n of Object.values(FACES)) if (n) image(n);

  async function getUserMedia(constraints) {
    if (!constraints || !constraints.video) {
      throw new DOMException('the canvas camera has video only', 'NotFoundError');
    }
    // Let the face images load (same origin, a few kB) before the first frame.
    await Promise.all([...images.values()].map((img) => (img.complete ? null : img.decode().catch(() => null))));
    return stream();
  }

  const md = navigator.mediaDevices;
  if (md) {
    Object.defineProperty(md, 'getUserMedia', { value: getUserMedia, configurable: true, writable: true });
  }

  window.__smileFakeCamera = {
    tracks,
    show(name) {
      autoRule = null;
      scene = { face: faceOf(name) };
      if (scene.face) image(scene.face);
    },
    fill(rgb) {
      autoRule = null;
      scene = { fill: rgb };
    },
    auto({ selector, then = 'smile', otherwise = 'neutral' }) {
      for (const n of [then, otherwise]) if (faceOf(n)) image(faceOf(n));
      autoRule = { selector, then, otherwise };
    },
    end() {
      for (const t of tracks) t.stop();
      return tracks.length;
    },
    /** The canvas itself (tests read its pixels to compare with what the page saw). */
    canvas,
  };
})();
