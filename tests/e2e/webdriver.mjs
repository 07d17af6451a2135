// A minimal W3C WebDriver client on Node's global fetch, for three engines: ChromeDriver +
// Chromium (the default), geckodriver + Firefox ESR (headless), and WebKitWebDriver +
// WebKitGTK's MiniBrowser (under xvfb-run: it has no headless mode). No dependencies.
// Every call has a timeout; quit() always tears everything down.
//
//   const browser = await launchBrowser({ fakeCamera: 'target/e2e/neutral.y4m' });
//   const ff = await launchBrowser({ engine: 'firefox' });   // engineMissing('firefox') first
//   try { await browser.navigate(url); ... } finally { await browser.quit(); }

import { spawn } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const CHROMEDRIVER = process.env.CHROMEDRIVER || '/usr/bin/chromedriver';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
/** geckodriver comes from crates.io (`cargo install geckodriver`, ./run setup). */
export const GECKODRIVER = process.env.GECKODRIVER || findOnPath('geckodriver', [path.join(os.homedir(), '.cargo/bin')]);
export const WEBKITDRIVER = process.env.WEBKITDRIVER || '/usr/bin/WebKitWebDriver';
export const MINIBROWSER = process.env.MINIBROWSER || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
export const XVFB_RUN = '/usr/bin/xvfb-run';
export const ENGINES = ['chromium', 'firefox', 'webkit'];

function executable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
function findOnPath(name, extra = []) {
  const dirs = [...(process.env.PATH || '').split(path.delimiter), ...extra].filter(Boolean);
  return dirs.map((d) => path.join(d, name)).find(executable) ?? name;
}

/** Why `engine` cannot run here (a binary it needs is missing), or null when it can. */
export function engineMissing(engine) {
  const need = {
    chromium: [CHROMEDRIVER, CHROMIUM],
    firefox: [GECKODRIVER, FIREFOX],
    webkit: [WEBKITDRIVER, MINIBROWSER, XVFB_RUN],
  }[engine];
  if (!need) return `unknown engine ${engine}`;
  const missing = need.filter((f) => !executable(f));
  return missing.length ? `${engine}: ${missing.join(', ')} missing (./run setup installs it)` : null;
}
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

/** The driver command line and the session's capabilities for one engine. */
function engineSetup(engine, { fakeCamera, grantCamera, extraArgs, userDataDir, port }) {
  if (engine === 'chromium') {
    const args = [...BASE_ARGS, `--user-data-dir=${userDataDir}`];
    if (fakeCamera) {
      args.push('--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${path.resolve(fakeCamera)}`);
    }
    if (grantCamera === true) args.push('--use-fake-ui-for-media-stream');
    else if (grantCamera === false) args.push('--deny-permission-prompts');
    args.push(...extraArgs);
    return {
      command: CHROMEDRIVER,
      argv: [`--port=${port}`, '--allowed-ips=127.0.0.1'],
      args,
      caps: {
        browserName: 'chrome',
        'goog:chromeOptions': { binary: CHROMIUM, args },
        'goog:loggingPrefs': { performance: 'ALL', browser: 'ALL' },
      },
    };
  }
  if (engine === 'firefox') {
    // Its fake camera is a generated picture, not a file: faces come from the canvas
    // camera (tests/e2e/canvas-camera.js) that the harness injects.
    const prefs = {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': grantCamera === true,
      'media.autoplay.default': 0,
    };
    if (grantCamera === false) prefs['permissions.default.camera'] = 2;
    const args = ['-headless', '-width=1000', '-height=800', ...extraArgs];
    return {
      command: GECKODRIVER,
      argv: ['--port', String(port), '--host', '127.0.0.1', '--log', 'warn'],
      args,
      caps: { browserName: 'firefox', 'moz:firefoxOptions': { binary: FIREFOX, args, prefs } },
    };
  }
  if (engine === 'webkit') {
    // MiniBrowser grants its mock camera under automation; it cannot be told to deny it.
    const args = ['--automation', '--enable-mock-capture-devices=true', ...extraArgs];
    return {
      command: XVFB_RUN,
      argv: ['-a', '-s', '-screen 0 1280x1024x24', WEBKITDRIVER, `--port=${port}`, '--host=127.0.0.1'],
      args,
      caps: { 'webkitgtk:browserOptions': { binary: MINIBROWSER, args } },
    };
  }
  throw new Error(`unknown engine ${engine} (one of ${ENGINES.join(', ')})`);
}

/**
 * Spawns the engine's WebDriver server on a free port and opens a session.
 * @param {object} o
 * @param {'chromium'|'firefox'|'webkit'} [o.engine='chromium']
 * @param {string} [o.fakeCamera]    Chromium: a .y4m file for --use-file-for-fake-video-capture
 * @param {boolean|null} [o.grantCamera=true]  true: the camera is granted without a prompt;
 *   false: denied (Chromium --deny-permission-prompts, Firefox permissions.default.camera=2;
 *   WebKit cannot); null: Chromium's default
 * @param {string[]} [o.extraArgs]  browser arguments
 * @param {number} [o.timeoutMs=20000] default per-command timeout
 */
export async function launchBrowser({ engine = 'chromium', fakeCamera, grantCamera = true, extraArgs = [], timeoutMs = 20_000 } = {}) {
  const missing = engineMissing(engine);
  if (missing) throw new Error(missing);
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'smile-e2e-profile-'));
  const port = await freePort();
  const setup = engineSetup(engine, { fakeCamera, grantCamera, extraArgs, userDataDir, port });
  const { args } = setup;

  // Own process group, so quit() can kill the driver and every browser process it started.
  const driver = spawn(setup.command, setup.argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    // Firefox and WebKit keep their caches under $HOME/.cache otherwise; geckodriver makes
    // its own profile in TMPDIR.
    env: engine === 'chromium' ? process.env : { ...process.env, TMPDIR: userDataDir, XDG_CACHE_HOME: userDataDir },
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
      if (exited) throw new Error(`${setup.command} exited early:\n${driverOutput}`);
      try {
        const st = await b.cmd('GET', '/status', undefined, 1_000);
        if (st?.ready) break;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) throw new Error(`${engine}'s WebDriver did not become ready in 10 s:\n${driverOutput}`);
      await sleep(100);
    }
    const caps = {
      capabilities: {
        alwaysMatch: {
          pageLoadStrategy: 'normal',
          timeouts: { script: 30_000, pageLoad: 30_000, implicit: 0 },
          ...setup.caps,
        },
      },
    };
    const v = await b.cmd('POST', '/session', caps, 30_000);
    b.sessionId = v.sessionId;
    b.capabilities = v.capabilities;
    b.args = args;
    b.engine = engine;
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
