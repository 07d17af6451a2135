// Injected by bench/run.mjs before any page script (playwright addInitScript) into both
// challenge pages. It records, in page time (ms since navigation start):
// - long tasks (PerformanceObserver 'longtask', buffered);
// - the first verdict: the 'smile-factor:first-analysis' mark, or, for a build of our page
//   without that mark, the first clearRect of the #overlay canvas (done after each analysis);
// - when #start became enabled, and clicks it at once (in a new task);
// - data-phase changes; at 'result' or 'error' it reports everything to run.mjs through
//   the exposed binding __benchReport (our page redirects one second later);
// - performance marks 'bench:challenge-start' and 'bench:challenge-end', which a Chromium
//   trace records on the page's main thread: run.mjs takes the CPU time between them;
// - with window.__benchMarker set (the smile-delay runs), every camera frame's marker square
//   (top-left, dark on neutral frames, light on smiling ones: bench/run.mjs switchClip) as
//   the page's <video> presents it: the times it turned light.
(() => {
  if (window !== window.top || !/^https?:$/.test(location.protocol) || location.pathname === '/continue') return;
  const FIRST_MARK = 'smile-factor:first-analysis';
  const B = {
    timeOrigin: performance.timeOrigin,
    longtasks: [],
    phases: [],
    firstMark: null,
    firstOverlay: null,
    startEnabled: null,
    clicked: null,
    challengeStart: null,
    challengeEnd: null,
    markerLight: [],
    markerFrames: 0,
    errors: [],
  };
  window.__bench = B;
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) B.longtasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch (e) {
    B.errors.push(`no longtask observer: ${e}`);
  }
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.name === FIRST_MARK && B.firstMark === null) B.firstMark = e.startTime;
  }).observe({ type: 'mark', buffered: true });

  const clearRect = CanvasRenderingContext2D.prototype.clearRect;
  CanvasRenderingContext2D.prototype.clearRect = function (...args) {
    if (B.firstOverlay === null && B.challengeStart !== null && this.canvas && this.canvas.id === 'overlay') {
      B.firstOverlay = performance.now();
    }
    return clearRect.apply(this, args);
  };

  let reported = false;
  const report = (phase) => {
    if (reported) return;
    reported = true;
    B.challengeEnd = performance.now();
    performance.mark('bench:challenge-end');
    // Long-task entries arrive after their task ends: give the last ones time to land.
    setTimeout(() => {
      B.dataset = { ...document.documentElement.dataset };
      B.endPhase = phase;
      window.__benchReport(JSON.parse(JSON.stringify(B)));
    }, 300);
  };

  // Reads the marker square of each presented video frame (a 1x1 scaled read of its middle).
  function watchMarker() {
    const video = document.getElementById('selfview');
    if (!video || !video.requestVideoFrameCallback) {
      B.errors.push('no #selfview video with requestVideoFrameCallback for the marker');
      return;
    }
    const canvas = document.createElement('canvas');
    canvas.width = 1;
    canvas.height = 1;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    let light = null;
    const onFrame = () => {
      const at = performance.now();
      if (video.videoWidth) {
        const sx = video.videoWidth / 640;
        const sy = video.videoHeight / 480;
        ctx.drawImage(video, 12 * sx, 12 * sy, 8 * sx, 8 * sy, 0, 0, 1, 1);
        const now = ctx.getImageData(0, 0, 1, 1).data[1] > 128;
        B.markerFrames += 1;
        if (now && light === false) B.markerLight.push(at);
        light = now;
      }
      if (B.challengeEnd === null) video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  let lastPhase;
  const onChange = () => {
    const root = document.documentElement;
    const phase = root && root.dataset.phase;
    if (phase !== lastPhase) {
      lastPhase = phase;
      B.phases.push([phase, performance.now()]);
      if (phase === 'challenge' && B.challengeStart === null) {
        B.challengeStart = performance.now();
        performance.mark('bench:challenge-start');
        if (window.__benchMarker) watchMarker();
      }
      if ((phase === 'result' || phase === 'error') && (B.clicked !== null || phase === 'error')) report(phase);
    }
    const start = document.getElementById('start');
    if (B.startEnabled === null && start && !start.disabled && start.offsetParent !== null) {
      B.startEnabled = performance.now();
      // A new task: never inside the page's own callbacks.
      setTimeout(() => {
        B.clicked = performance.now();
        start.click();
      }, 0);
    }
  };
  new MutationObserver(onChange).observe(document, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ['data-phase', 'disabled', 'hidden'],
  });
})();
