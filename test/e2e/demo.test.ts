import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemo, type Demo } from '../../examples/demo/server.js';

// Debian's Chromium (`apt-get install chromium`; .ci/run installs it when missing).
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let demo: Demo;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
  demo = await startDemo({ port: 0, env: {} });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
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
      // Saved on every run (git-ignored); UPDATE_SCREENSHOT=1 refreshes the one in the docs.
      const shots = fileURLToPath(new URL(process.env.UPDATE_SCREENSHOT ? '../../docs/' : './screenshots/', import.meta.url));
      mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: `${shots}demo.png`, fullPage: true });
      expect(existsSync(`${shots}demo.png`)).toBe(true);
      await page.close();
    } finally {
      await pauseAll(false);
    }
  });
});
