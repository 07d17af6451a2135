// The real verifier server (server/, the Rust binary) in demo mode, for the e2e tests:
// it serves www/, opens challenges, judges the uploaded crops with its own run of the
// models and signs the verdict; its POST /continue checks that token as Auth0 would.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO, WWW } from './helpers.mjs';

/** The binary `cargo build -p smile-factor-server` (or `./run test`) leaves. */
export function serverBinary() {
  const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(REPO, 'target');
  const bin = path.join(targetDir, 'debug', 'smile-factor-server');
  if (!existsSync(bin)) {
    throw new Error(`the verifier server is not built: ${bin} is missing. Run \`cargo build -p smile-factor-server\` (./run test does).`);
  }
  return bin;
}

/**
 * Starts the server on a free loopback port in demo mode (no secrets in its environment).
 * Resolves once it prints its demo link. `output()` is everything it wrote (stdout and its
 * log on stderr), for the tests that check what a log may never contain.
 */
export async function startVerifier({ durationMs = 5_000, frameIntervalMs = 1_000, timeoutMs = 30_000 } = {}) {
  const env = { ...process.env, RUST_LOG: 'info' };
  for (const k of ['SMILE_CTX_SECRET', 'SMILE_CTX_SECRET_PREV', 'SMILE_VERDICT_SECRET', 'SMILE_ISSUER', 'SMILE_TENANTS']) delete env[k];
  const child = spawn(serverBinary(), [
    '--listen', '127.0.0.1:0', '--www', WWW, '--models', path.join(REPO, 'models'),
    '--duration-ms', String(durationMs), '--frame-interval-ms', String(frameIntervalMs),
  ], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const origin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the verifier printed no demo link within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = (chunk) => {
      out += chunk;
      const m = /^(http:\/\/127\.0\.0\.1:\d+)\/\?state=/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => { out += chunk; });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the verifier exited (${code ?? signal}) before it listened:\n${out}`));
    });
  });
  return {
    origin,
    output: () => out,
    /** Stops the server and waits for it to exit. */
    async close() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
}
