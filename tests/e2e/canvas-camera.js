// TEST ONLY, never shipped: a camera made of a canvas, for engines whose fake camera
// cannot play a file (Firefox, WebKit), and for scenes that must follow the page (the
// verifier's prompts: Chromium's y4m camera loops a file and cannot follow a schedule). tools/serve.mjs's `inject` option serves it as
// /__e2e/canvas-camera.js and loads it first in <head> (same origin: the page's
// script-src 'self' allows it). It replaces getUserMedia with canvas.captureStream(fps)
// of a fixture face drawn as tests/e2e/y4m.mjs draws its scenes: the 112x112 crop scaled
// 3.2x, centred on a grey-blue gradient, swaying by a pixel so the frames are not frozen.
//
//   __smileFakeCamera.show('neutral' | 'smile' | 'empty' | 'neutral_2' | ...)  what it films
//   __smileFakeCamera.fill([r, g, b])   a flat colour (channel-order checks)
//   __smileFakeCamera.auto({ selector, then: 'smile', otherwise: 'neutral', reactMs: 0 })
//                                       `then` while the element is shown (also inside a
//                                       <smile-factor>'s shadow root), each switch
//                                       `reactMs` late, as a person's reaction would be
//   __smileFakeCamera.end()             stop every track it handed out (camera_lost)
//   __smileFakeCamera.tracks            the live tracks it handed out
//   __smileFakeCamera.log               [{ t, face }]: every switch, performance.now() ms
// Query parameters on the page URL set the start, so a test needs no script of its own:
// `fakecam=NAME` films that face (default neutral); `fakecam=auto` smiles while the prompt
// (#prompt) shows, `auto-neutral` ignores the prompts, `auto-smile` smiles throughout,
// `auto-straight` smiles and keeps a straight face on cue (smile mode); `react=MS` delays
// the automatic switches.
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
  let scene = { face: FACES.neutral, name: 'neutral' };
  let autoRule = null;
  let tick = 0;
  let timer = null;
  const log = [];

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

  // The element, in the document or in an embed's shadow root, and whether it shows.
  function shown(selector) {
    const roots = [document, ...[...document.querySelectorAll('smile-factor')].map((e) => e.shadowRoot).filter(Boolean)];
    return roots.some((root) => {
      const el = root.querySelector(selector);
      if (!el || el.hidden || el.getClientRects().length === 0) return false;
      return getComputedStyle(el).visibility !== 'hidden';
    });
  }

  // A scene by the name a test gave it ('smile', 'empty', a crop's name) or a colour.
  const sceneNamed = (name) => ({ face: faceOf(name), name });
  const label = (s) => (s.fill ? `fill:${s.fill}` : s.name);
  function setScene(next) {
    if (label(next) !== label(scene)) log.push({ t: performance.now(), face: label(next) });
    scene = next;
  }

  // The automatic rule: the face it wants now, switched to `reactMs` after it changed.
  function follow() {
    if (!autoRule) return;
    const want = shown(autoRule.selector) ? autoRule.then : autoRule.otherwise;
    if (want === autoRule.wanted) return;
    autoRule.wanted = want;
    clearTimeout(autoRule.pending);
    if (autoRule.reactMs > 0) {
      const rule = autoRule;
      rule.pending = setTimeout(() => { if (autoRule === rule) setScene(sceneNamed(want)); }, rule.reactMs);
    } else {
      setScene(sceneNamed(want));
    }
  }

  function draw() {
    follow();
    const shift = SWAY[tick++ % SWAY.length];
    ctx.drawImage(render(scene), 0, shift);
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

  function stopFollowing() {
    if (autoRule) clearTimeout(autoRule.pending);
    autoRule = null;
  }

  const params = new URLSearchParams(location.search);
  const start = params.get('fakecam') || 'neutral';
  // `fakecam=auto...`: [shown while the prompt shows, shown otherwise].
  const PROMPT_RULES = {
    auto: ['smile', 'neutral'],
    'auto-neutral': ['neutral', 'neutral'],
    'auto-smile': ['smile', 'smile'],
    'auto-straight': ['neutral', 'smile'],
  };
  // The crops start loading before Start is pressed (below).

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

  const api = {
    tracks,
    log,
    show(name) {
      stopFollowing();
      setScene(sceneNamed(name));
      if (scene.face) image(scene.face);
    },
    fill(rgb) {
      stopFollowing();
      setScene({ fill: rgb });
    },
    auto({ selector, then = 'smile', otherwise = 'neutral', reactMs = 0 }) {
      stopFollowing();
      for (const n of [then, otherwise]) if (faceOf(n)) image(faceOf(n));
      autoRule = { selector, then, otherwise, reactMs, wanted: null, pending: null };
      follow();
    },
    end() {
      for (const t of tracks) t.stop();
      return tracks.length;
    },
    /** The canvas itself (tests read its pixels to compare with what the page saw). */
    canvas,
  };
  window.__smileFakeCamera = api;

  if (start in PROMPT_RULES) {
    const [then, otherwise] = PROMPT_RULES[start];
    const reactMs = Math.max(0, Number(params.get('react')) || 0);
    api.auto({ selector: '#prompt', then, otherwise, reactMs });
    // Switch as soon as the prompt shows, not at the next frame.
    new MutationObserver(follow).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['hidden'] });
  } else {
    scene = sceneNamed(start);
  }
  for (const n of Object.values(FACES)) if (n) image(n);
  if (scene.face) image(scene.face);
})();
