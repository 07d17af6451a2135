// Runs a command (wasm-pack test --safari ...) against WebKitGTK's MiniBrowser: starts
// WebKitWebDriver under xvfb-run, and in front of it a small proxy that fills in the
// capabilities on session creation (wasm-bindgen-test's runner sends Safari empty ones),
// reached through SAFARIDRIVER_REMOTE, which the runner prefers to any local driver.
// Everything stops when the command ends; its exit code is this script's.
//
//   node tools/webkit-wasm-driver.mjs wasm-pack test --safari --safaridriver /usr/bin/WebKitWebDriver
//
// No dependencies beyond Node's standard library.

import { spawn } from 'node:child_process';
import http from 'node:http';
import { createServer } from 'node:net';

const DRIVER = process.env.WEBKITDRIVER || '/usr/bin/WebKitWebDriver';
const MINIBROWSER = process.env.MINIBROWSER || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const CAPS = {
  capabilities: {
    alwaysMatch: {
      'webkitgtk:browserOptions': {
        binary: MINIBROWSER,
        args: ['--automation', '--enable-mock-capture-devices=true'],
      },
    },
  },
};

const freePort = () => new Promise((resolve, reject) => {
  const s = createServer();
  s.on('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});

const [cmd, ...args] = process.argv.slice(2);
if (!cmd) {
  console.error('usage: node tools/webkit-wasm-driver.mjs COMMAND [ARGS...]');
  process.exit(2);
}

const driverPort = await freePort();
// Own process group: Xvfb, the driver and MiniBrowser go down together.
const driver = spawn('xvfb-run', ['-a', '-s', '-screen 0 1280x1024x24', DRIVER, `--port=${driverPort}`, '--host=127.0.0.1'], {
  stdio: ['ignore', 'inherit', 'inherit'],
  detached: true,
});
const killDriver = () => {
  try {
    process.kill(-driver.pid, 'SIGKILL');
  } catch { /* gone */ }
};
process.once('exit', killDriver);

const proxy = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body = Buffer.concat(chunks);
    if (req.method === 'POST' && /^\/session\/?$/.test(req.url)) body = Buffer.from(JSON.stringify(CAPS));
    const headers = { ...req.headers, 'content-length': body.length, host: `127.0.0.1:${driverPort}` };
    const up = http.request({ host: '127.0.0.1', port: driverPort, method: req.method, path: req.url, headers }, (upRes) => {
      res.writeHead(upRes.statusCode, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', (e) => {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ value: { error: 'unknown error', message: `WebKitWebDriver: ${e.message}` } }));
    });
    up.end(body);
  });
});
await new Promise((r) => proxy.listen(0, '127.0.0.1', r));

// Wait for the driver to answer /status (xvfb-run takes a moment).
const deadline = Date.now() + 15_000;
for (;;) {
  const ok = await fetch(`http://127.0.0.1:${driverPort}/status`, { signal: AbortSignal.timeout(1_000) })
    .then((r) => r.ok).catch(() => false);
  if (ok) break;
  if (Date.now() > deadline || driver.exitCode !== null) {
    console.error('WebKitWebDriver did not start');
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 200));
}

const env = { ...process.env, SAFARIDRIVER_REMOTE: `http://127.0.0.1:${proxy.address().port}` };
for (const k of ['GECKODRIVER', 'GECKODRIVER_REMOTE', 'CHROMEDRIVER', 'CHROMEDRIVER_REMOTE']) delete env[k];
const child = spawn(cmd, args, { stdio: 'inherit', env });
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => child.kill(sig));
const code = await new Promise((r) => child.once('exit', (c, s) => r(c ?? (s ? 1 : 0))));
proxy.close();
killDriver();
process.exit(code);
