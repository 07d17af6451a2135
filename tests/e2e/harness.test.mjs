// The harness itself, without the real page: fake camera frames arrive with the fixture's
// colours, camera denial works, the performance log records requests. Runs without a build.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startServer } from '../../tools/serve.mjs';
import { SCENES, browserRequestUrls, cameraFile } from './helpers.mjs';
import { launchBrowser } from './webdriver.mjs';

// A script file of its own: the server's strict CSP allows no inline script.
const PROBE = `<!doctype html><meta charset="utf-8"><title>probe</title><video id="v" muted playsinline></video>
<script src="probe.js"></script>`;
const PROBE_JS = `window.grab = async () => {
  try {
    const s = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    const v = document.getElementById('v'); v.srcObject = s; await v.play();
    await new Promise((r) => v.requestVideoFrameCallback(r));
    const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
    const x = c.getContext('2d'); x.drawImage(v, 0, 0);
    const px = (a, b) => Array.from(x.getImageData(a, b, 1, 1).data.slice(0, 3));
    s.getTracks().forEach((t) => t.stop());
    return { w: c.width, h: c.height, pixels: [[320, 240], [320, 150], [20, 20], [620, 460]].map(([a, b]) => [a, b, px(a, b)]) };
  } catch (e) { return { error: e.name }; }
};
`;

describe('e2e harness', { concurrency: false }, () => {
  let dir;
  let srv;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'smile-e2e-probe-'));
    await writeFile(path.join(dir, 'index.html'), PROBE);
    await writeFile(path.join(dir, 'probe.js'), PROBE_JS);
    srv = await startServer({ root: dir });
  });
  after(async () => {
    await srv?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const grab = async (browser) => {
    await browser.navigate('about:blank');
    await browser.getLog('performance');
    await browser.navigate(`${srv.origin}/`);
    return browser.executeAsyncScript('window.grab().then(arguments[0])', [], 20_000);
  };

  test('the fake camera shows the generated neutral-face scene', { timeout: 60_000 }, async () => {
    const scene = SCENES.neutral();
    const browser = await launchBrowser({ fakeCamera: await cameraFile('neutral') });
    try {
      const r = await grab(browser);
      assert.equal(r.error, undefined, `getUserMedia failed: ${r.error}`);
      assert.deepEqual([r.w, r.h], [640, 480]);
      for (const [x, y, got] of r.pixels) {
        // The scene sways by up to 2 px between frames; compare with the unshifted scene loosely.
        const o = (y * scene.width + x) * 4;
        const want = [scene.data[o], scene.data[o + 1], scene.data[o + 2]];
        const diff = Math.max(...got.map((v, i) => Math.abs(v - want[i])));
        assert.ok(diff <= 24, `pixel (${x},${y}) is ${got}, expected about ${want}`);
      }
      const urls = await browserRequestUrls(browser);
      assert.ok(urls.includes(`${srv.origin}/`), `performance log has the page request: ${urls}`);
    } finally {
      await browser.quit();
    }
  });

  test('without the fake UI and with --deny-permission-prompts, getUserMedia is denied', { timeout: 60_000 }, async () => {
    const browser = await launchBrowser({ fakeCamera: await cameraFile('neutral'), grantCamera: false });
    try {
      const r = await grab(browser);
      assert.equal(r.error, 'NotAllowedError');
    } finally {
      await browser.quit();
    }
  });
});
