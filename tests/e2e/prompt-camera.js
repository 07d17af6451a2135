// TEST ONLY, never shipped: a getUserMedia stand-in whose video is a canvas drawing the
// fixture faces, so a test can switch the face on cue. Chromium's y4m fake camera loops a
// file and cannot follow a schedule it does not know (the verifier's prompts).
//
// A classic script, injected at the top of <head> by the e2e harness (tools/serve.mjs,
// option `initScripts`), same origin, so the page's CSP (script-src 'self') allows it.
// The faces come from /__e2e/faces/<name>.png. It differs from canvas-camera.js (the
// cross-engine camera) by following the page's prompt element on its own, from the URL.
//
//   window.__smileFakeCamera.show('smile' | 'neutral' | 'empty')   switch now
//   window.__smileFakeCamera.auto(true)    show the smile while the page's prompt element
//                                          (#prompt) is visible, the base face otherwise
//   window.__smileFakeCamera.base          the face shown outside prompts ('neutral')
//   window.__smileFakeCamera.log           [{t, face}] every switch, performance.now() ms
//
// The query parameter `fakecam` (e.g. ?fakecam=smile, ?fakecam=auto,
// ?fakecam=auto-neutral) sets the start: a test then needs no script of its own; `react`
// (ms, default 0) delays each automatic switch, as a person's reaction and smile onset
// would (api.reactMs). The
// picture sways by a pixel from frame to frame (a 7-frame cycle, as the y4m files), so
// the page's frozen-frame rule does not take it for a still picture.
(() => {
  'use strict';
  const FACES = { neutral: 'neutral_1', smile: 'smile_1' };
  const W = 640;
  const H = 480;
  const FPS = 30;
  const SCALE = 3.2; // as tests/e2e/y4m.mjs faceScene
  const SWAY = [0, 1, 2, 1, 0, -1, -2];

  const images = {};
  const loaded = Promise.all(Object.entries(FACES).map(([name, file]) => new Promise((resolve) => {
    const img = new Image();
    img.onload = () => { images[name] = img; resolve(); };
    img.onerror = () => resolve(); // a missing face draws as an empty scene
    img.src = `/__e2e/faces/${file}.png`;
  })));

  const params = new URLSearchParams(location.search);
  const start = params.get('fakecam') || 'auto';
  const api = {
    face: start.startsWith('auto') ? 'neutral' : start,
    base: start === 'auto-smile' ? 'smile' : 'neutral',
    prompted: 'smile',
    autoMode: start.startsWith('auto'),
    reactMs: Math.max(0, Number(params.get('react')) || 0),
    log: [],
    show(name) {
      if (name !== this.face) this.log.push({ t: performance.now(), face: name });
      this.face = name;
    },
    auto(on = true) {
      this.autoMode = on;
      if (on) sync();
    },
  };
  if (start === 'auto-neutral') api.prompted = 'neutral'; // ignores the prompts
  if (start === 'auto-smile') api.prompted = 'smile';     // smiles all the time
  if (start === 'auto-straight') { api.base = 'smile'; api.prompted = 'neutral'; } // smile mode, obeying
  api.face = api.autoMode ? api.base : api.face;
  window.__smileFakeCamera = api;

  // The prompt element: the hosted page renders into light DOM (#prompt); an embed's
  // shadow root is searched too.
  function promptVisible() {
    const roots = [document, ...[...document.querySelectorAll('smile-factor')].map((e) => e.shadowRoot).filter(Boolean)];
    return roots.some((r) => {
      const el = r.getElementById ? r.getElementById('prompt') : r.querySelector('#prompt');
      return !!el && !el.hidden;
    });
  }
  let wanted = null;
  let pending = null;
  function sync() {
    if (!api.autoMode) return;
    const target = promptVisible() ? api.prompted : api.base;
    if (target === wanted) return;
    wanted = target;
    clearTimeout(pending);
    if (api.reactMs > 0) pending = setTimeout(() => api.show(target), api.reactMs);
    else api.show(target);
  }
  new MutationObserver(sync).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['hidden'] });

  let canvas = null;
  function draw(ctx, frame) {
    const g = ctx.createLinearGradient(0, 0, 0, H);
    g.addColorStop(0, 'rgb(150,156,160)');
    g.addColorStop(1, 'rgb(118,122,128)');
    ctx.fillStyle = g;
    ctx.fillRect(0, 0, W, H);
    const img = images[api.face];
    if (img) {
      const w = img.width * SCALE;
      const h = img.height * SCALE;
      const shift = SWAY[frame % SWAY.length];
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(img, (W - w) / 2, (H - h) / 2 + shift, w, h);
    }
  }
  function stream() {
    if (!canvas) {
      canvas = document.createElement('canvas');
      canvas.width = W;
      canvas.height = H;
      const ctx = canvas.getContext('2d');
      let frame = 0;
      draw(ctx, frame);
      // A timer, not requestAnimationFrame: it keeps drawing while the tab is busy.
      setInterval(() => { sync(); draw(ctx, ++frame); }, 1000 / FPS);
    }
    return canvas.captureStream(FPS);
  }

  const md = navigator.mediaDevices;
  if (!md) return;
  md.getUserMedia = async function getUserMedia(constraints) {
    if (!constraints || !constraints.video) throw new DOMException('video only', 'NotSupportedError');
    await loaded;
    return stream();
  };
  md.enumerateDevices = async () => [{ deviceId: 'canvas', groupId: 'canvas', kind: 'videoinput', label: 'canvas camera (test)', toJSON() { return this; } }];
})();
