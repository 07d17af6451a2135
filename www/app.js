// Loads the wasm module and hands the page to it; all logic lives in Rust (src/web/).
// An ES module, so the page needs no inline script (CSP: script-src 'self').
import init, { startPage } from './pkg/smile_factor.js';

const root = document.getElementById('app');

// Without the wasm module there is no verdict and no checked return URL, so this
// fallback only explains; it never redirects.
function fail(error) {
  console.error('smile-factor: the engine could not be loaded:', error);
  document.documentElement.dataset.phase = 'error';
  for (const screen of document.querySelectorAll('.screen')) {
    screen.hidden = screen.id !== 'error-screen';
  }
  const message = document.getElementById('error-message');
  if (message) {
    message.textContent = 'The face detection engine could not be loaded.';
  }
}

try {
  await init();
  await startPage(root);
} catch (error) {
  fail(error);
}
