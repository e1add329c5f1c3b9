import sparticuz from '@sparticuz/chromium';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium (`apt-get install chromium`), used when installed. */
const DEBIAN_CHROMIUM = '/usr/bin/chromium';

/** Flags for a headless Chromium in a container: no sandbox (root), no GPU, no calls home. */
const QUIET_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Which Chromium the browser tests run, and with which flags. */
export interface ChromiumChoice {
  readonly executablePath: string;
  readonly args: readonly string[];
  /** `CHROMIUM_PATH`, `debian` or `@sparticuz/chromium`. */
  readonly source: string;
}

/**
 * The Chromium for browser tests: `CHROMIUM_PATH` when set (it must exist), else Debian's
 * `/usr/bin/chromium` when installed, else the one inside the `@sparticuz/chromium`
 * devDependency (unpacked to the temporary directory on first use; it needs NSS, Debian's
 * `libnss3`). Never skips: no usable browser is an error that says what to install.
 */
export async function chooseChromium(env: Record<string, string | undefined> = process.env): Promise<ChromiumChoice> {
  const given = env.CHROMIUM_PATH;
  if (given) {
    if (!existsSync(given)) throw new Error(`CHROMIUM_PATH=${given}: no such file (unset it to use Debian's or @sparticuz/chromium's)`);
    return { executablePath: given, args: QUIET_FLAGS, source: 'CHROMIUM_PATH' };
  }
  if (existsSync(DEBIAN_CHROMIUM)) return { executablePath: DEBIAN_CHROMIUM, args: QUIET_FLAGS, source: 'debian' };
  try {
    const executablePath = await sparticuz.executablePath();
    // Its flags are for serverless hosts; --single-process there ends the browser when a page's context closes.
    return { executablePath, args: sparticuz.args.filter((flag) => flag !== '--single-process'), source: '@sparticuz/chromium' };
  } catch (err) {
    throw new Error(
      `no Chromium for the browser tests: ${DEBIAN_CHROMIUM} is absent and @sparticuz/chromium could not unpack its own ` +
        `(${(err as Error).message}); run npm ci, apt-get install chromium, or set CHROMIUM_PATH`,
      { cause: err },
    );
  }
}

/**
 * Launches the Chromium {@link chooseChromium} picks, with playwright-core.
 *
 * @example
 * ```ts
 * const browser = await launchChromium();
 * const page = await browser.newPage();
 * ```
 */
export async function launchChromium(): Promise<Browser> {
  const choice = await chooseChromium();
  try {
    return await chromium.launch({ executablePath: choice.executablePath, args: [...choice.args] });
  } catch (err) {
    const hint = choice.source === '@sparticuz/chromium' ? ' (it needs NSS: apt-get install libnss3)' : '';
    throw new Error(`Chromium from ${choice.source} at ${choice.executablePath} did not start${hint}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
