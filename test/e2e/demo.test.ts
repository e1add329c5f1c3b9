import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemo, type Demo } from '../../examples/demo/server.js';
import { launchChromium } from '../helpers/browser.js';

let demo: Demo;
let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium(); // Debian's Chromium, or @sparticuz/chromium's; fails, never skips, without one
  demo = await startDemo({ port: 0, env: {} });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await demo?.close();
});

async function control(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${demo.url}/control/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
}

async function open(user: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(demo.url);
  await page.selectOption('#user', user);
  await page.waitForFunction("document.querySelector('#served')?.textContent?.includes('database port')");
  return page;
}

const pauseAll = async (paused: boolean) => {
  for (const name of ['r1', 'r2']) await control(`replicas/${name}`, { paused });
};

describe('the demo in a browser', () => {
  it('replica reads without consistency: Follow, reload — the button is back to Follow', async () => {
    await control('mode', { mode: 'naive' });
    await new Promise((resolve) => setTimeout(resolve, 800));
    await pauseAll(true);
    try {
      const page = await open('linus');
      await expect.poll(() => page.textContent('#follow')).toBe('Follow');
      await page.click('#follow');
      await expect.poll(() => page.textContent('#detector')).toContain('STALE');
      await page.click('#reload');
      await page.waitForFunction("document.querySelector('#served')?.textContent?.includes('database port')");
      await page.selectOption('#user', 'linus');
      await expect.poll(() => page.textContent('#follow')).toBe('Follow'); // un-followed, as users report
      await page.close();
    } finally {
      await pauseAll(false);
    }
  });

  it('pg-replica-router: Follow, reload — Following; the routing log shows why', async () => {
    await control('mode', { mode: 'pgrr' });
    await new Promise((resolve) => setTimeout(resolve, 800));
    await pauseAll(true);
    try {
      const page = await open('ada');
      await page.click('#follow');
      await expect.poll(() => page.textContent('#detector')).toContain('saw it');
      await page.click('#reload');
      await page.waitForFunction("document.querySelector('#served')?.textContent?.includes('database port')");
      await expect.poll(() => page.textContent('#follow')).toBe('Following');
      await expect.poll(() => page.textContent('#log'), { timeout: 5000 }).toMatch(/replica-behind|wrote-in-scope/);
      await page.close();
    } finally {
      await pauseAll(false);
    }
  });
});

/** What the page may take: a read with replicas paused checks them live first; the chart polls every 250 ms. */
const soon = { timeout: 5000 };
/** Time between the steps, so that the screenshot shows them apart. */
const beat = () => new Promise((resolve) => setTimeout(resolve, 1500));

/** The last position a chart line shows, in bytes after the demo's start (from its data attribute). */
async function lineAt(page: Page, series: string): Promise<number> {
  const last = await page.getAttribute(`#chart [data-series="${series}"]`, 'data-last');
  return last ? Number(last) : Number.NaN;
}

/** The session's decisions drawn on the chart, in order. */
async function marks(page: Page): Promise<Array<{ seq: number; role: string; node: string; reason: string; statement: string }>> {
  return page.$$eval('#chart [data-decision]', (els) =>
    els.map((el) => {
      const d = (name: string) => el.getAttribute(`data-${name}`) ?? '';
      return { seq: Number(d('seq')), role: d('role'), node: d('node'), reason: d('reason'), statement: d('statement') };
    }),
  );
}

describe('the chart of positions and routing decisions', () => {
  it('a paused replica falls behind, the session reads around it (on the primary, saying why), then it catches up', async () => {
    await control('mode', { mode: 'pgrr' });
    const page = await open('barbara');
    try {
      await expect.poll(() => page.getAttribute('#chart', 'data-samples').then(Number), soon).toBeGreaterThan(4);
      await expect.poll(() => lineAt(page, 'primary'), soon).not.toBeNaN();
      await beat();

      // r1 paused, a write: r1's line stays where it was, r2's follows the primary's.
      await control('replicas/r1', { paused: true });
      await page.fill('#body', 'written while r1 is paused');
      await page.click('#post button');
      await expect.poll(() => page.textContent('#detector'), soon).toContain('saw it');
      await expect.poll(async () => (await lineAt(page, 'primary')) - (await lineAt(page, 'r1')), soon).toBeGreaterThan(0);
      await expect.poll(async () => (await lineAt(page, 'primary')) - (await lineAt(page, 'r2')), soon).toBeLessThanOrEqual(0);
      await beat();

      // Both paused, a follow: the read back is above both replicas' lines, so on the primary, because replica-behind.
      await control('replicas/r2', { paused: true });
      await page.click('#follow');
      await expect.poll(() => page.textContent('#follow'), soon).toBe('Following');
      await expect
        .poll(async () => (await marks(page)).filter((m) => m.role === 'primary' && m.statement === 'read').map((m) => m.reason), soon)
        .toContain('replica-behind');
      for (const replica of ['r1', 'r2'])
        await expect.poll(async () => (await lineAt(page, 'floor')) - (await lineAt(page, replica)), soon).toBeGreaterThan(0);
      await expect
        .poll(() => page.textContent('#legend'), soon)
        .toMatch(/r1 replay LSN [\d.]+ k?B behind.*r2 replay LSN [\d.]+ k?B behind/);
      await beat();

      // Saved on every run (git-ignored); UPDATE_SCREENSHOT=1 refreshes the one in the docs.
      const shots = fileURLToPath(new URL(process.env.UPDATE_SCREENSHOT ? '../../docs/' : './screenshots/', import.meta.url));
      mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: `${shots}demo.png` });
      expect(existsSync(`${shots}demo.png`)).toBe(true);

      // Resumed: both lines reach the primary's, and the session's reads are back on replicas.
      const lastOnPrimary = Math.max(...(await marks(page)).map((m) => m.seq));
      await pauseAll(false);
      for (const replica of ['r1', 'r2'])
        await expect.poll(async () => (await lineAt(page, 'primary')) - (await lineAt(page, replica)), soon).toBeLessThanOrEqual(0);
      await page.click('#reload');
      await page.waitForFunction("document.querySelector('#served')?.textContent?.includes('database port')");
      await expect
        .poll(async () => (await marks(page)).filter((m) => m.seq > lastOnPrimary && m.statement === 'read').map((m) => m.role), soon)
        .toContain('replica');
    } finally {
      await pauseAll(false);
      await page.close();
    }
  });
});
