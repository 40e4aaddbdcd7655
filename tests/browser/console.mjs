// Browser scenarios for /console: Playwright's core library driving Debian's chromium (no browser download).
//   node console.mjs BASE_URL SCENARIO   (env: CONSOLE_KEY, CONSOLE_ADMIN_KEY, CONSOLE_IMAGE, CONSOLE_SCREENSHOT)
// Each scenario acts as a user would (types, clicks, paints) and checks what the page shows; any failed
// check throws, which exits non-zero with the reason. tests/test_console_browser.py runs one per test.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const [base, scenario] = process.argv.slice(2);
const KEY = process.env.CONSOLE_KEY;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 30000;   // the longest any one step may take (a video job in the sandbox takes a few seconds)

async function open(page, hash, key = KEY) {
  await page.goto(`${base}/console/#/${hash}`);
  await page.getByLabel('Gateway key').fill(key);
  await page.getByRole('button', { name: 'Use key' }).click();
  await page.locator('main h1').waitFor();
}

async function fillPrompt(page, text) {
  await page.locator('.field[data-param="prompt"] textarea').fill(text);
}

/** The estimated price once it settles: the micros the dry run answered. */
async function settledPrice(page, id, previous = null) {
  const price = page.locator(`#${id}`);
  await page.waitForFunction(([sel, prev]) => {
    const el = document.querySelector(sel);
    return el && el.dataset.micros !== undefined && el.dataset.micros !== prev && !el.textContent.startsWith('Pricing');
  }, [`#${id}`, previous], { timeout: WAIT_MS });
  return { micros: await price.getAttribute('data-micros'), text: await price.textContent() };
}

const scenarios = {
  async generate(page) {
    await open(page, 'playground/gemini-3-pro-image');
    await fillPrompt(page, 'a lighthouse at dusk');
    await page.locator('.field[data-param="size"] input').fill('1000x700');
    await settledPrice(page, 'pg-price');
    await page.getByRole('button', { name: 'Generate' }).click();
    const card = page.locator('#gallery .result').first();
    await card.locator('img').first().waitFor({ timeout: WAIT_MS });
    await page.waitForFunction(() => [...document.querySelectorAll('#gallery .measured')].every((m) => /px$/.test(m.textContent)), null, { timeout: WAIT_MS });
    // the size measured from the image itself, and why it differs from the one asked
    assert.equal(await card.locator('.measured').first().textContent(), '1264×848 px');
    const adjustments = await card.locator('.adjustments').textContent();
    assert.match(adjustments, /size: asked 1000x700 → 1264x848/);
    assert.match(adjustments, /nearest supported aspect ratio 3:2/);
    const note = page.locator('.field[data-param="size"] .adjusted-note');
    assert.match(await note.textContent(), /asked 1000x700, gets 1264x848/);
    assert.match(await card.locator('.timeline').textContent(), /gemini .* ok/);
    assert.match(await card.locator('.cost').textContent(), /^\$\d/);
    if (process.env.CONSOLE_SCREENSHOT) {
      await page.locator('#gallery').scrollIntoViewIfNeeded();
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: process.env.CONSOLE_SCREENSHOT, fullPage: true });
    }
  },

  async price(page) {
    await open(page, 'playground/gpt-image-1');
    await fillPrompt(page, 'a red bicycle');
    const before = await settledPrice(page, 'pg-price');
    assert.equal(before.micros, '42000');                  // models.d/gpt-image-1.yaml: medium (the default), 1024x1024
    await page.getByLabel('quality', { exact: true }).selectOption({ label: 'high' });
    const after = await settledPrice(page, 'pg-price', before.micros);
    assert.equal(after.micros, '167000');                  // high, 1024x1024
    assert.match(after.text, /\$0\.167/);
    await page.locator('.field[data-param="size"] input').fill('1536x1024');
    const wide = await settledPrice(page, 'pg-price', after.micros);
    assert.equal(wide.micros, '250000');                   // high, 1536x1024
  },

  async compare(page) {
    await open(page, 'playground/gpt-image-1');
    await fillPrompt(page, 'a teapot on a table');
    const first = await settledPrice(page, 'pg-price');
    for (const name of ['DALL-E 2', 'Gemini 3 Pro Image', 'FLUX.1 [schnell]']) await page.getByLabel(name, { exact: true }).check();
    assert.equal(await page.getByLabel('Imagen 4', { exact: true }).isDisabled(), true, 'four models at most');
    await page.waitForFunction(() => ['dall-e-2', 'gemini-3-pro-image', 'flux.1-schnell', 'gpt-image-1']
      .every((m) => document.querySelector('#pg-price').textContent.includes(m)));
    const all = await settledPrice(page, 'pg-price', first.micros);
    assert.ok(Number(all.micros) > Number(first.micros), 'the price is the four models\' together');
    await page.getByRole('button', { name: 'Generate' }).click();
    const row = page.locator('#gallery .row').first();
    await page.waitForFunction(() => document.querySelectorAll('#gallery .row .result img').length === 4
      && [...document.querySelectorAll('#gallery .measured')].every((m) => /px$/.test(m.textContent)), null, { timeout: WAIT_MS });
    const cards = await row.locator('.result').evaluateAll((els) => els.map((e) => ({ model: e.dataset.model, box: e.getBoundingClientRect().toJSON() })));
    assert.deepEqual(cards.map((c) => c.model).sort(), ['dall-e-2', 'flux.1-schnell', 'gemini-3-pro-image', 'gpt-image-1']);
    assert.ok(cards.every((c) => Math.abs(c.box.y - cards[0].box.y) < 2), 'side by side: one row');
  },

  async explain(page) {
    await open(page, 'playground/gemini-3-pro-image');
    await fillPrompt(page, 'a fox in snow');
    await page.getByRole('radiogroup', { name: 'aspect_ratio' }).getByText('16:9', { exact: true }).click();
    await page.getByRole('button', { name: /Explain/ }).click();
    const view = page.locator('#pg-explain .explain');
    await view.waitFor({ timeout: WAIT_MS });
    const text = await view.textContent();
    assert.match(text, /POST https:\/\/generativelanguage\.googleapis\.com\/v1beta\/models\/gemini-3-pro-image:generateContent/);
    assert.match(text, /"aspectRatio": "16:9"/);
    assert.match(text, /"text": "a fox in snow"/);
    assert.match(text, /"x-goog-api-key": "\*\*\*"/);       // auth masked
    assert.ok((await view.locator('details.route').count()) >= 2, 'one section per route');
  },

  async video(page) {
    await open(page, 'videos/sora-2');
    await fillPrompt(page, 'waves on a beach');
    await page.locator('.field[data-param="seconds"] input').fill('4');
    await page.getByText('More options').click();
    await page.getByLabel('webhook_url').fill(process.env.CONSOLE_WEBHOOK);
    await page.getByRole('button', { name: 'Make the video' }).click();
    const said = page.locator('form .status');
    await page.waitForFunction(() => document.querySelector('form .status').textContent !== '');
    const id = ((await said.textContent()).match(/^Queued (video_\w+)/) || [])[1];
    assert.ok(id, `the video was queued: ${await said.textContent()}`);
    const job = page.locator(`#jobs .job[data-video="${id}"]`);
    await job.locator('.badge.st-completed').waitFor({ timeout: WAIT_MS });
    assert.equal(await job.locator('progress').getAttribute('value'), '100');
    await job.locator('.webhooks').getByText('delivered').waitFor({ timeout: WAIT_MS });   // the receiver answered 2xx
    assert.match(await job.locator('.webhooks').textContent(), /video\.completed delivered · 1 try, last answer HTTP 204/);
    await job.getByRole('button', { name: 'Play' }).click();
    const video = job.locator('video');
    await video.waitFor({ timeout: WAIT_MS });
    await page.waitForFunction((id) => {
      const v = document.querySelector(`[data-video="${id}"] video`);
      return v && v.readyState >= 2 && v.videoWidth > 0;
    }, id, { timeout: WAIT_MS });
    await video.evaluate(async (v) => { v.muted = true; await v.play(); });
    await page.waitForFunction((id) => document.querySelector(`[data-video="${id}"] video`).currentTime > 0, id,
      { timeout: WAIT_MS });                                   // it plays: time moves
    const played = await video.evaluate((v) => ({ w: v.videoWidth, h: v.videoHeight, d: v.duration }));
    assert.equal(`${played.w}x${played.h}`, '720x1280');
    assert.ok(Math.abs(played.d - 4) < 0.5, `4 s long (${played.d})`);
    await job.getByRole('button', { name: 'Delete' }).click();
    await page.getByText(`Deleted ${id}.`).waitFor();
    await job.waitFor({ state: 'detached' });                 // gone from the list
  },

  async mask(page) {
    await open(page, 'edit/gpt-image-1');
    await page.getByLabel(/Images to edit/).setInputFiles(process.env.CONSOLE_IMAGE);
    const canvas = page.locator('#mask-canvas');
    await canvas.waitFor();
    const box = await canvas.boundingBox();
    // paint a stroke across the middle of the upper half
    await page.mouse.move(box.x + box.width * 0.25, box.y + box.height * 0.25);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.75, box.y + box.height * 0.25, { steps: 12 });
    await page.mouse.up();
    // and a dot by keyboard: focus the canvas (the brush starts at the centre), move it, Space paints
    await canvas.focus();
    for (let i = 0; i < 6; i++) await page.keyboard.press('ArrowLeft');    // 18 px a step on a 512 px wide canvas
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowDown');    // 18 px a step on a 384 px high canvas
    await page.keyboard.press('Space');
    await fillPrompt(page, 'add a hot air balloon');
    const sent = page.waitForRequest((r) => r.url().endsWith('/v1/images/edits') && r.method() === 'POST');
    await page.getByRole('button', { name: 'Edit', exact: true }).click();
    const request = await sent;
    assert.match(request.headers()['content-type'], /^multipart\/form-data; boundary=/);
    const card = page.locator('#ed-gallery .result').first();
    await card.locator('img').waitFor({ timeout: WAIT_MS });
    await page.waitForFunction(() => /px$/.test(document.querySelector('#ed-gallery .measured').textContent), null, { timeout: WAIT_MS });
    assert.match(await card.locator('.measured').textContent(), /^\d+×\d+ px$/);
    assert.match(await card.locator('.timeline').textContent(), /openai .* ok/);
    // The simulator tints the area the mask leaves transparent (sandbox/render.py render_edit) and refuses a
    // mask whose size differs from the image's: the painted stroke is tinted, the rest keeps the input's blue.
    const pixels = await card.locator('img').evaluate((img) => {
      const c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const at = (x, y) => [...ctx.getImageData(Math.round(x * c.width), Math.round(y * c.height), 1, 1).data.slice(0, 3)];
      // the output is 3:2, the input 4:3 cropped top and bottom: input y 0.25 -> 0.22, 0.734 -> 0.763
      return { painted: at(0.5, 0.22), keyed: at(0.289, 0.763), untouched: at(0.5, 0.6) };
    });
    assert.ok(pixels.painted[0] > 100, `the painted area was edited (rgb ${pixels.painted})`);
    assert.ok(pixels.keyed[0] > 100, `the area painted by keyboard was edited (rgb ${pixels.keyed})`);
    const blue = [40, 120, 200];   // tests/test_console_browser.py's input image
    assert.ok(pixels.untouched.every((v, i) => Math.abs(v - blue[i]) < 8), `the rest was kept (rgb ${pixels.untouched})`);
  },

  async wrongkey(page) {
    await page.goto(`${base}/console/#/catalog`);
    const notice = page.locator('#notice');
    await notice.waitFor();
    assert.match(await notice.textContent(), /needs a key: enter your gateway key/);
    await open(page, 'catalog', 'sk-not-a-real-key');
    await page.waitForFunction(() => /refused this key/.test(document.querySelector('#notice').textContent));
    assert.match(await notice.textContent(), /The gateway refused this key: .*Enter a valid gateway key above\./);
    assert.equal(await page.locator('.model').count(), 0);
    await open(page, 'catalog');                                    // the right key clears it
    await page.locator('.model').first().waitFor();
    assert.equal(await notice.isHidden(), true);
  },

  async catalog(page) {
    await page.setViewportSize({ width: 390, height: 844 });        // a phone
    await open(page, 'catalog');
    await page.getByLabel('Search').fill('veo');
    await page.waitForFunction(() => document.querySelectorAll('.model').length === 2);
    const card = page.locator('.model[data-model="veo-3.1"]');
    assert.match(await card.textContent(), /video/);
    assert.match(await card.locator('.routes').textContent(), /sandboxed/);
    assert.match(await card.locator('.price').textContent(), /\/ s/);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling at phone width (${overflow} px too wide)`);
    await card.getByRole('link', { name: 'Make a video' }).click();
    await page.locator('#vid-model').waitFor();
    assert.equal(await page.locator('#vid-model').inputValue(), 'veo-3.1');
  },

  async usage(page) {
    await open(page, 'usage');
    const made = await page.evaluate(async (k) => (await fetch('/v1/images/generations', { method: 'POST',
      headers: { Authorization: `Bearer ${k}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'dall-e-2', prompt: 'a usage probe', size: '256x256' }) })).status, KEY);
    assert.equal(made, 200);
    await page.getByLabel('Admin key').fill(process.env.CONSOLE_ADMIN_KEY);
    await page.getByRole('button', { name: 'Show' }).click();
    const status = await page.evaluate(async (k) => (await fetch('/v1/usage', { headers: { Authorization: `Bearer ${k}` } })).status,
      process.env.CONSOLE_ADMIN_KEY);
    if (status === 404) {       // the gateway has no usage endpoints: the view says so plainly
      await page.getByText('has no usage endpoint yet').waitFor({ timeout: WAIT_MS });
      await page.getByText('has no request history endpoint yet').waitFor({ timeout: WAIT_MS });
    } else {                    // spend over time, and the request just made in the history
      await page.locator('#usage-chart svg rect').first().waitFor({ timeout: WAIT_MS });
      await page.locator('#usage-requests tbody tr').first().waitFor({ timeout: WAIT_MS });
      assert.match(await page.locator('#usage-requests tbody').textContent(), /dall-e-2.*succeeded/);
    }
  },
};

const run = scenarios[scenario];
if (!run) throw new Error(`unknown scenario ${scenario}; known: ${Object.keys(scenarios).join(', ')}`);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mediagate-console-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
const errors = [];
try {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 40[14]/.test(m.text())) errors.push(`console error: ${m.text()}`); });
  await run(page);
  assert.deepEqual(errors, [], 'no script errors on the page');
  console.log(`ok ${scenario}`);
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
