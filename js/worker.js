// The inference worker: instantiates the engine module the page already compiled (it
// arrives in the first message), then hands over to the Rust side, which loads the models
// and answers frames. Kept tiny on purpose; see src/web/worker.rs.
import init, { workerMain } from './engine/smile_factor.js';

addEventListener('message', async ({ data }) => {
  try {
    const { module, ...options } = data;
    await init({ module_or_path: module });
    await workerMain(options);
  } catch (error) {
    postMessage({ type: 'error', message: String(error?.message ?? error) });
  }
}, { once: true });
