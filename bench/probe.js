// Injected by bench/run.mjs before any page script (playwright addInitScript) into both
// challenge pages. It records, in page time (ms since navigation start):
// - long tasks (PerformanceObserver 'longtask', buffered);
// - the first verdict: the 'smile-factor:first-analysis' mark, or, for a build of our page
//   without that mark, the first clearRect of the #overlay canvas (done after each analysis);
// - when #start became enabled, and clicks it at once (in a new task);
// - data-phase changes; at 'result' or 'error' it reports everything to run.mjs through
//   the exposed binding __benchReport (our page redirects one second later).
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
    // Long-task entries arrive after their task ends: give the last ones time to land.
    setTimeout(() => {
      B.dataset = { ...document.documentElement.dataset };
      B.endPhase = phase;
      window.__benchReport(JSON.parse(JSON.stringify(B)));
    }, 300);
  };

  let lastPhase;
  const onChange = () => {
    const root = document.documentElement;
    const phase = root && root.dataset.phase;
    if (phase !== lastPhase) {
      lastPhase = phase;
      B.phases.push([phase, performance.now()]);
      if (phase === 'challenge' && B.challengeStart === null) B.challengeStart = performance.now();
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
