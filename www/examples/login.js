// The example login: password first, then the smile factor, then act on its result.
// A real page checks the password on its server and lets the server decide after the
// factor; this demo accepts any password and only shows the outcome.
import '../pkg/smile-factor.js';

const form = document.getElementById('login');
const step = document.getElementById('second-factor');
const slot = document.getElementById('factor');
const outcome = document.getElementById('outcome');

const MESSAGES = {
  smiled: 'You smiled. Access denied.',
  no_face: 'No face was visible. Access denied.',
  interrupted: 'The check was interrupted. Access denied.',
  camera_denied: 'Camera access was refused. Access denied.',
  camera_unavailable: 'No camera could be used. Access denied.',
  camera_lost: 'The camera stopped during the check. Access denied.',
  error: 'The check could not run. Access denied.',
};

form.addEventListener('submit', (event) => {
  event.preventDefault();
  form.hidden = true;
  step.hidden = false;
  const factor = document.createElement('smile-factor');
  factor.setAttribute('duration', slot.dataset.duration ?? '10');
  factor.addEventListener('smile-factor-result', ({ detail }) => {
    // Kept on the page for the end-to-end test and for curious developers.
    document.documentElement.dataset.result = JSON.stringify(detail);
    outcome.textContent = detail.notsmiling
      ? `Welcome, ${document.getElementById('username').value}!`
      : (MESSAGES[detail.reason] ?? MESSAGES.error);
    outcome.hidden = false;
  });
  slot.replaceChildren(factor);
});
