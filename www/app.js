// Hands the page to the package entry; all logic lives in Rust (src/web/).
// An ES module, so the page needs no inline script (CSP: script-src 'self').
import { startPage } from './pkg/smile-factor.js';

const root = document.getElementById('app');

// Without the engine there is no verdict and no checked return URL, so this fallback
// only explains; it never redirects.
function fail(error) {
  console.error('smile-factor: the engine could not be loaded:', error);
  document.documentElement.dataset.phase = 'error';
  const message = document.createElement('p');
  message.setAttribute('role', 'alert');
  message.textContent = 'The face detection engine could not be loaded.';
  root.replaceChildren(message);
}

try {
  await startPage(root);
} catch (error) {
  fail(error);
}
