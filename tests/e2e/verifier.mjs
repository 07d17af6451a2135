// The real verifier server (server/, the Rust binary) in demo mode, for the e2e tests:
// it serves www/, opens challenges, judges the uploaded crops with its own run of the
// models and signs the verdict; its POST /continue checks that token as Auth0 would.
// The spawn itself lives in tools/serve.mjs, whose harness runs the same binary.

import { serverBinary, startRustServer } from '../../tools/serve.mjs';
import { WWW } from './helpers.mjs';

export { serverBinary };

/**
 * Starts the server on a free loopback port in demo mode (no secrets in its environment).
 * Resolves once it prints its demo link. `output()` is everything it wrote (stdout and its
 * log on stderr), for the tests that check what a log may never contain.
 */
export function startVerifier({ durationMs = 5_000, frameIntervalMs = 1_000, timeoutMs = 30_000 } = {}) {
  return startRustServer({ www: WWW, durationMs, frameIntervalMs, timeoutMs });
}
