// Starts the self-check's module worker and hands its answer to bench/run.mjs.
const worker = new Worker('worker.mjs', { type: 'module' });
worker.onmessage = (e) => { window.workerResult = e.data; };
worker.onerror = (e) => { window.workerResult = { error: e.message || 'worker failed' }; };
