// The tarball users install: what it holds, and that an application finds its code and its types
// under every moduleResolution, from ES modules and from CommonJS.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installPackage, packPackage, type PackedPackage } from '../helpers/package-tarball.js';
import { entryProbes, resolutions, runScript, typecheck, writeConsumerApp } from './consumer-app.js';

/** Packed size budget (0.1.0 shipped 543 kB, of which docs/demo.png alone was 246 kB). */
const MAX_PACKED_BYTES = 350_000;

interface PackageJson {
  license: string;
  repository: { url: string };
  homepage: string;
  bugs: { url: string };
  exports: Record<string, string | { types: string; default: string }>;
  typesVersions?: Record<string, Record<string, string[]>>;
  bin: Record<string, string>;
}

describe('the npm tarball', () => {
  let work: string;
  let packed: PackedPackage;
  let app: string;
  let installed: string;
  let paths: string[];
  let manifest: PackageJson;
  // Each tsc run is a process of its own: started two at a time in beforeAll, awaited by its test.
  const typechecks = new Map<string, Promise<string[]>>();

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pgrr-package-'));
    packed = await packPackage(work);
    paths = packed.files.map((f) => f.path);
    app = join(work, 'app');
    installed = await installPackage(packed.tarball, app);
    manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as PackageJson;
    await writeConsumerApp(app);
    const settings = resolutions.map((r) => r.moduleResolution);
    inLanes(settings.map((setting) => () => typecheck(app, setting))).forEach((errors, i) => typechecks.set(settings[i]!, errors));
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('holds the library, its types, LICENSE, README, CHANGELOG and docs, and no images or benchmark data', async () => {
    for (const file of ['LICENSE', 'README.md', 'CHANGELOG.md', 'package.json', 'docs/getting-started.md']) {
      expect(paths).toContain(file);
    }
    expect(await readFile(join(installed, 'LICENSE'), 'utf8')).toMatch(
      /^MIT License\n\nCopyright \(c\) 2026 pg-replica-router contributors/,
    );
    expect(manifest.license).toBe('MIT');
    expect(manifest.repository.url).toBe('git+https://github.com/pg-replica-router/pg-replica-router.git');
    expect(manifest.homepage).toMatch(/^https:\/\/github\.com\/pg-replica-router\/pg-replica-router/);
    expect(manifest.bugs.url).toBe('https://github.com/pg-replica-router/pg-replica-router/issues');

    const unexpected = paths.filter(
      (p) =>
        /\.(png|jpe?g|gif|svg)$/.test(p) ||
        (p.endsWith('.json') && p !== 'package.json') ||
        /^docs\/(strategies|throughput|bench)/.test(p) ||
        (p.endsWith('.ts') && !p.endsWith('.d.ts')) ||
        !/^(dist\/(lib|adapters)\/|docs\/[\w/-]+\.md$|[A-Z]+\.md$|LICENSE$|package\.json$)/.test(p),
    );
    expect(unexpected).toEqual([]);
    expect(packed.size).toBeLessThan(MAX_PACKED_BYTES);
  });

  it('names no source file it does not ship: a map carries its sources, or there are no maps', async () => {
    const maps = paths.filter((p) => p.endsWith('.map'));
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(await readFile(join(installed, map), 'utf8')) as {
        sources: string[];
        sourcesContent?: Array<string | null>;
      };
      expect(sourcesContent?.filter((s) => typeof s === 'string').length, map).toBe(sources.length);
    }
    for (const js of paths.filter((p) => p.endsWith('.js'))) {
      const mapped = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(await readFile(join(installed, js), 'utf8'))?.[1];
      if (mapped && !mapped.startsWith('data:')) expect(paths, `${js} → ${mapped}`).toContain(join(js, '..', mapped));
    }
  });

  it('holds every file its exports, typesVersions and bin name', () => {
    const targets = [
      ...Object.values(manifest.exports).flatMap((t) => (typeof t === 'string' ? [t] : [t.types, t.default])),
      ...Object.values(manifest.typesVersions?.['*'] ?? {}).flat(),
      ...Object.values(manifest.bin),
    ];
    for (const target of targets) expect(paths).toContain(target.replace(/^\.\//, ''));
  });

  it('has a type probe for each entry point it exports', () => {
    expect(Object.keys(entryProbes).sort()).toEqual(
      Object.keys(manifest.exports)
        .filter((e) => e !== './package.json')
        .sort(),
    );
  });

  it.each(resolutions)('type-checks an import of every entry point under strict, moduleResolution "$moduleResolution"', async (r) => {
    const errors = await typechecks.get(r.moduleResolution);
    expect(errors?.filter((line) => !line.startsWith('cts/'))).toEqual([]);
  });

  it.each(resolutions.filter((r) => r.cts))('in a .cts file under module "$module", allows $cts', async (r) => {
    const errors = await typechecks.get(r.moduleResolution);
    const cts = errors?.filter((line) => line.startsWith('cts/'));
    if (r.cts === 'import and import()') expect(cts).toEqual([]);
    else expect(cts).toEqual([expect.stringMatching(/^cts\/static\.cts\(1,30\): error TS1479: .*cannot be imported with 'require'/)]);
  });

  it('loads every entry point from an ES module and through require() in CommonJS', async () => {
    const loaded = Object.fromEntries(Object.keys(entryProbes).map((entry) => [entry, 'function']));
    expect(await runScript(app, 'load.mjs')).toEqual(loaded);
    expect(await runScript(app, 'load.cjs')).toEqual(loaded);
  });
});

/** Starts `tasks` `lanes` at a time; each returned promise settles as its task does. */
function inLanes<T>(tasks: Array<() => Promise<T>>, lanes = 2): Array<Promise<T>> {
  const tails: Array<Promise<unknown>> = Array.from({ length: lanes }, () => Promise.resolve());
  return tasks.map((task, i) => {
    const settled = tails[i % lanes]!.then(task);
    tails[i % lanes] = settled.catch(() => undefined);
    return settled;
  });
}
