// A minimal W3C WebDriver client for ChromeDriver + Chromium, on Node's global fetch.
// No dependencies. Every call has a timeout; quit() always tears everything down.
//
//   const browser = await launchBrowser({ fakeCamera: 'target/e2e/neutral.y4m' });
//   try { await browser.navigate(url); ... } finally { await browser.quit(); }

import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const CHROMEDRIVER = process.env.CHROMEDRIVER || '/usr/bin/chromedriver';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

export const BASE_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--window-size=1000,800',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Chromedriver runs in its own process group (so its Chromium can be killed with it);
// that group does not get the terminal's Ctrl-C, so kill live groups when this process ends.
const liveGroups = new Map(); // pid -> profile dir
let exitHooks = false;
function killLiveGroups() {
  for (const [pid, dir] of liveGroups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch { /* gone */ }
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch { /* best effort */ }
  }
  liveGroups.clear();
}
function installExitHooks() {
  if (exitHooks) return;
  exitHooks = true;
  process.once('exit', killLiveGroups);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      killLiveGroups();
      process.kill(process.pid, sig);
    });
  }
}

export class WebDriverError extends Error {
  constructor(method, url, status, value) {
    super(`WebDriver ${method} ${url} -> ${status} ${value?.error ?? ''}: ${String(value?.message ?? '').split('\n')[0]}`);
    this.status = status;
    this.error = value?.error;
    this.value = value;
  }
}

/**
 * Spawns ChromeDriver on a free port and opens a Chromium session.
 * @param {object} o
 * @param {string} [o.fakeCamera]    a .y4m file for --use-file-for-fake-video-capture
 * @param {boolean|null} [o.grantCamera=true]  true: --use-fake-ui-for-media-stream (camera granted);
 *   false: --deny-permission-prompts instead (getUserMedia fails with NotAllowedError); null: neither
 * @param {string[]} [o.extraArgs]
 * @param {number} [o.timeoutMs=20000] default per-command timeout
 */
export async function launchBrowser({ fakeCamera, grantCamera = true, extraArgs = [], timeoutMs = 20_000 } = {}) {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'smile-e2e-profile-'));
  const args = [...BASE_ARGS, `--user-data-dir=${userDataDir}`];
  if (fakeCamera) {
    args.push('--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${path.resolve(fakeCamera)}`);
  }
  if (grantCamera === true) args.push('--use-fake-ui-for-media-stream');
  else if (grantCamera === false) args.push('--deny-permission-prompts');
  args.push(...extraArgs);

  const port = await freePort();
  // Own process group, so quit() can kill chromedriver and every Chromium it started.
  const driver = spawn(CHROMEDRIVER, [`--port=${port}`, '--allowed-ips=127.0.0.1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  installExitHooks();
  if (driver.pid) liveGroups.set(driver.pid, userDataDir);
  let driverOutput = '';
  const keep = (d) => {
    driverOutput = (driverOutput + d).slice(-20_000);
  };
  driver.stdout.on('data', keep);
  driver.stderr.on('data', keep);
  let exited = false;
  const exitedPromise = new Promise((r) => driver.once('exit', () => { exited = true; r(); }));
  driver.once('error', (e) => { keep(String(e)); exited = true; });

  const base = `http://127.0.0.1:${port}`;
  const b = new Browser(base, driver, exitedPromise, userDataDir, timeoutMs, () => driverOutput);
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (exited) throw new Error(`chromedriver exited early:\n${driverOutput}`);
      try {
        const st = await b.cmd('GET', '/status', undefined, 1_000);
        if (st?.ready) break;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) throw new Error(`chromedriver did not become ready in 10 s:\n${driverOutput}`);
      await sleep(100);
    }
    const caps = {
      capabilities: {
        alwaysMatch: {
          browserName: 'chrome',
          pageLoadStrategy: 'normal',
          timeouts: { script: 30_000, pageLoad: 30_000, implicit: 0 },
          'goog:chromeOptions': { binary: CHROMIUM, args },
          'goog:loggingPrefs': { performance: 'ALL', browser: 'ALL' },
        },
      },
    };
    const v = await b.cmd('POST', '/session', caps, 30_000);
    b.sessionId = v.sessionId;
    b.capabilities = v.capabilities;
    b.args = args;
  } catch (e) {
    await b.quit();
    throw e;
  }
  return b;
}

export class Browser {
  constructor(base, driver, exitedPromise, userDataDir, timeoutMs, output) {
    this.base = base;
    this.driver = driver;
    this.exitedPromise = exitedPromise;
    this.userDataDir = userDataDir;
    this.timeoutMs = timeoutMs;
    this.driverOutput = output;
    this.sessionId = null;
  }

  /** One raw WebDriver command; resolves with `value`, throws WebDriverError or on timeout. */
  async cmd(method, url, body, timeoutMs = this.timeoutMs) {
    let res;
    try {
      res = await fetch(this.base + url, {
        method,
        headers: body === undefined ? {} : { 'Content-Type': 'application/json; charset=utf-8' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      const why = e?.name === 'TimeoutError' ? `timed out after ${timeoutMs} ms` : e.message;
      throw new Error(`WebDriver ${method} ${url}: ${why}`);
    }
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      throw new WebDriverError(method, url, res.status, { error: 'bad json', message: text.slice(0, 300) });
    }
    if (!res.ok) throw new WebDriverError(method, url, res.status, json.value);
    return json.value;
  }

  s(url) {
    if (!this.sessionId) throw new Error('no WebDriver session');
    return `/session/${this.sessionId}${url}`;
  }

  navigate(url, timeoutMs) { return this.cmd('POST', this.s('/url'), { url }, timeoutMs); }
  getCurrentUrl() { return this.cmd('GET', this.s('/url')); }
  getTitle() { return this.cmd('GET', this.s('/title')); }

  async findElement(css) {
    const v = await this.cmd('POST', this.s('/element'), { using: 'css selector', value: css });
    return v[ELEMENT];
  }
  click(elementId) { return this.cmd('POST', this.s(`/element/${elementId}/click`), {}); }
  async clickSelector(css) { return this.click(await this.findElement(css)); }
  getText(elementId) { return this.cmd('GET', this.s(`/element/${elementId}/text`)); }

  /** Runs `script` (a function body, or a function whose source is wrapped) with `args`. */
  executeScript(script, args = [], timeoutMs) {
    const body = typeof script === 'function' ? `return (${script}).apply(null, arguments);` : script;
    return this.cmd('POST', this.s('/execute/sync'), { script: body, args }, timeoutMs);
  }
  /** As executeScript; a function gets `args` and then the `done` callback last. */
  executeAsyncScript(script, args = [], timeoutMs) {
    const body = typeof script === 'function' ? `(${script}).apply(null, arguments);` : script;
    return this.cmd('POST', this.s('/execute/async'), { script: body, args }, timeoutMs);
  }

  /** PNG bytes of the viewport; written to `file` when given. */
  async screenshot(file) {
    const png = Buffer.from(await this.cmd('GET', this.s('/screenshot'), undefined, 30_000), 'base64');
    if (file) {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, png);
    }
    return png;
  }

  /** Drains a log (`performance`, `browser`): [{level, message, timestamp}]. */
  getLog(type) { return this.cmd('POST', this.s('/se/log'), { type }); }

  /** Parsed DevTools events from the performance log: [{method, params}]. */
  async performanceEvents() {
    const entries = await this.getLog('performance');
    return entries.map((e) => JSON.parse(e.message).message);
  }

  /** A DevTools command through ChromeDriver's `goog/cdp/execute` extension. */
  cdp(cmd, params = {}) {
    return this.cmd('POST', this.s('/goog/cdp/execute'), { cmd, params });
  }

  /** ChromeDriver's Permissions API extension. */
  setPermission(name, state) {
    return this.cmd('POST', this.s('/permissions'), { descriptor: { name }, state });
  }

  /** Polls `script` (sync, in the page) until it returns a truthy value; returns that value. */
  async waitFor(script, args = [], { timeoutMs = 10_000, intervalMs = 100, what = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
      try {
        last = await this.executeScript(script, args, Math.max(1_000, Math.min(5_000, deadline - Date.now())));
        if (last) return last;
      } catch (e) {
        // Navigation in progress or page gone: keep polling until the deadline.
        last = e;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
      }
      await sleep(intervalMs);
    }
  }

  /** Deletes the session, kills chromedriver's process group, removes the profile. Never throws. */
  async quit() {
    if (this.sessionId) {
      const id = this.sessionId;
      this.sessionId = null;
      await this.cmd('DELETE', `/session/${id}`, undefined, 10_000).catch(() => {});
    }
    const killGroup = (sig) => {
      try {
        process.kill(-this.driver.pid, sig);
      } catch { /* already gone */ }
    };
    if (this.driver.exitCode === null && this.driver.signalCode === null) {
      killGroup('SIGTERM');
      const t = sleep(3_000).then(() => 'timeout');
      if ((await Promise.race([this.exitedPromise, t])) === 'timeout') killGroup('SIGKILL');
    }
    // Stragglers (Chromium helpers) in the group.
    killGroup('SIGKILL');
    liveGroups.delete(this.driver.pid);
    await rm(this.userDataDir, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
  }
}
