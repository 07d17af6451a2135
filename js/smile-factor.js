// smile-factor: the package entry. One ES module, no inline script, no eval: it works
// under a strict Content-Security-Policy (script-src 'self' 'wasm-unsafe-eval').
//
//   <script type="module" src="/smile-factor/smile-factor.js"></script>
//   <smile-factor return-url="https://tenant.example" state="..."></smile-factor>
//
//   import { mount } from './smile-factor/smile-factor.js';
//   const result = await mount(document.querySelector('#factor'), { duration: 10 });
//
// All logic (verdict, return-URL checks, camera, worker) is in the Rust engine; this file
// only finds the assets next to itself, compiles the engine once, and adapts the
// element's lifecycle to it. Asset names are rewritten to content-hashed ones by
// tools/package.mjs, so they can be cached forever.
import init, { mountChallenge, startPage as startEnginePage } from './engine/smile_factor.js';

const ASSETS = {
  wasm: new URL('./engine/smile_factor_bg.wasm', import.meta.url),
  // The same engine built with relaxed SIMD: its multiply-adds are fused where the CPU
  // has FMA (about 12% less time for the expression net). Chosen when the browser has it.
  wasmRelaxed: new URL('./engine/smile_factor_bg_relaxed.wasm', import.meta.url),
  worker: new URL('./worker.js', import.meta.url),
  css: new URL('./smile-factor.css', import.meta.url),
  detector: new URL('./models/tiny_face_detector.onnx', import.meta.url),
  expression: new URL('./models/face_expression.onnx', import.meta.url),
};

/** Attributes of <smile-factor> and the option each one sets. */
const ATTRIBUTES = {
  state: 'state',
  'return-url': 'returnUrl',
  duration: 'duration',
  threshold: 'threshold',
  'analysis-fps': 'analysisFps',
  content: 'content',
  lang: 'lang',
  config: 'config',
};

async function compileEngine(url) {
  try {
    return await WebAssembly.compileStreaming(fetch(url));
  } catch (streamingError) {
    // Some static hosts send .wasm without application/wasm; compile from bytes then.
    const response = await fetch(url);
    if (!response.ok) {
      throw new Error(`smile-factor: could not load ${url}: HTTP ${response.status}`, { cause: streamingError });
    }
    return WebAssembly.compile(await response.arrayBuffer());
  }
}

/** `v128.const 0` */
const V128_ZERO = [0xfd, 0x0c, ...new Array(16).fill(0)];
/** A function body: no locals, `f32x4.relaxed_madd(0, 0, 0)`, end. */
const PROBE_BODY = [0x00, ...V128_ZERO, ...V128_ZERO, ...V128_ZERO, 0xfd, 0x85, 0x02, 0x0b];
/** A module with one function `() -> v128` of that body: valid only with relaxed SIMD. */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: () -> v128
  0x03, 0x02, 0x01, 0x00, // functions: one, of type 0
  0x0a, PROBE_BODY.length + 2, 0x01, PROBE_BODY.length, ...PROBE_BODY, // code
]);

/** The engine file for this browser: the relaxed-SIMD build where it validates. */
function engineUrl() {
  let relaxed = false;
  try {
    relaxed = WebAssembly.validate(RELAXED_PROBE);
  } catch {
    relaxed = false;
  }
  return relaxed ? ASSETS.wasmRelaxed : ASSETS.wasm;
}

let engine = null;

/** Compiles and instantiates the engine once per page; the worker reuses the module. */
function loadEngine() {
  engine ??= (async () => {
    const module = await compileEngine(engineUrl());
    await init({ module_or_path: module });
    return {
      module,
      worker: ASSETS.worker.href,
      css: ASSETS.css.href,
      detector: ASSETS.detector.href,
      expression: ASSETS.expression.href,
    };
  })();
  // A failed load may succeed later (network); do not keep the rejection.
  engine.catch(() => { engine = null; });
  return engine;
}

/** What a failed challenge reports when the engine itself could not start. */
function engineFailure(error) {
  return {
    notsmiling: false,
    reason: 'error',
    framesAnalysed: 0,
    faceSeenRatio: 0,
    maxSmileScore: 0,
    message: `the face detection engine could not be loaded: ${error?.message ?? error}`,
  };
}

/**
 * <smile-factor>: the challenge in a shadow root. Attributes are read when it is
 * connected; removing it stops the camera, the worker and every listener.
 */
export class SmileFactorElement extends HTMLElement {
  #handle = null;
  #pending = null;

  /** Options set from code (mount() uses this); attributes win over them. */
  options = {};

  /** The last result, once there is one. */
  result = null;

  connectedCallback() {
    if (this.#handle || this.#pending) return;
    const root = this.shadowRoot ?? this.attachShadow({ mode: 'open' });
    const pending = {};
    this.#pending = pending;
    loadEngine().then(
      (assets) => {
        // Removed (or removed and re-added) while loading: that connection is over.
        if (this.#pending !== pending) return;
        this.#pending = null;
        this.#handle = mountChallenge(root, this, this.#collectOptions(), assets, (detail) => this.#report(detail));
      },
      (error) => {
        if (this.#pending !== pending) return;
        this.#pending = null;
        console.error('smile-factor:', error);
        const message = document.createElement('p');
        message.setAttribute('role', 'alert');
        message.textContent = 'The face detection engine could not be loaded.';
        root.replaceChildren(message);
        this.#report(engineFailure(error));
      },
    );
  }

  disconnectedCallback() {
    this.#pending = null;
    const handle = this.#handle;
    this.#handle = null;
    if (handle) {
      handle.destroy();
      handle.free();
    }
  }

  #collectOptions() {
    const options = { ...this.options };
    for (const [attribute, option] of Object.entries(ATTRIBUTES)) {
      if (this.hasAttribute(attribute)) options[option] = this.getAttribute(attribute);
    }
    return options;
  }

  #report(detail) {
    this.result = detail;
    this.dispatchEvent(new CustomEvent('smile-factor-result', { detail, bubbles: true, composed: true }));
  }
}

if (!customElements.get('smile-factor')) {
  customElements.define('smile-factor', SmileFactorElement);
}

/**
 * Adds a <smile-factor> to `element` and resolves with its result. Options as the
 * attributes (`returnUrl` for `return-url`); `signal` aborts: the challenge is removed
 * (camera and worker stopped) and the promise rejects with the signal's reason.
 */
export function mount(element, options = {}) {
  if (!(element instanceof Element)) {
    return Promise.reject(new TypeError('smile-factor: mount() needs a DOM element to render into'));
  }
  const { signal, ...rest } = options ?? {};
  if (signal?.aborted) return Promise.reject(signal.reason);
  const factor = document.createElement('smile-factor');
  factor.options = rest;
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      factor.remove();
      reject(signal.reason);
    };
    factor.addEventListener('smile-factor-result', (event) => {
      signal?.removeEventListener('abort', onAbort);
      resolve(event.detail);
    }, { once: true });
    signal?.addEventListener('abort', onAbort, { once: true });
    element.append(factor);
  });
}

/**
 * The whole hosted page (www/index.html): config from config.json (or data-* on
 * `root`), state from the page URL, redirect to the return URL's /continue.
 */
export async function startPage(root) {
  const assets = await loadEngine();
  await startEnginePage(root, assets);
}
