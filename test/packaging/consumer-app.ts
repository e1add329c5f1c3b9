// A small application that uses the installed package the way users' apps do: TypeScript under
// each moduleResolution, a .cts file (CommonJS TypeScript), and plain .mjs / .cjs scripts.
import { join } from 'node:path';
import { projectRoot, run, writeFiles } from '../helpers/package-tarball.js';

/**
 * One probe per entry point: an export, and a type built from it that is `any` when that entry
 * point's declarations (or the packages they import) did not resolve.
 */
export const entryProbes: Record<string, { name: string; type: (local: string) => string }> = {
  '.': { name: 'createRouter', type: (f) => `Parameters<typeof ${f}>[0]['primary']` },
  './testing': { name: 'startCluster', type: (f) => `Awaited<ReturnType<typeof ${f}>>` },
  './express': { name: 'consistency', type: (f) => `ReturnType<typeof ${f}>` },
  './fastify': { name: 'consistency', type: (f) => `typeof ${f}` },
  './nestjs': { name: 'ConsistencyModule', type: (f) => `Parameters<typeof ${f}.forRoot>[0]` },
  './kysely': { name: 'kyselyDialect', type: (f) => `ReturnType<typeof ${f}>` },
  './drizzle': { name: 'replicaDrizzle', type: (f) => `ReturnType<typeof ${f}>` },
  './knex': { name: 'knexConfig', type: (f) => `Parameters<typeof ${f}>[0]` },
  './typeorm': { name: 'typeormDriver', type: (f) => `ReturnType<typeof ${f}>` },
  './prisma': { name: 'prismaAdapter', type: (f) => `ReturnType<typeof ${f}>` },
  './bullmq': { name: 'consistentProcessor', type: (f) => `Parameters<typeof ${f}>[1]` },
};

/**
 * The moduleResolution settings an application may use, each with its usual `module`, and what
 * that setting allows in a CommonJS TypeScript file (.cts): `await import()` always, a static
 * `import` only where TypeScript compiles it to a require() of an ES module (node20, nodenext) or
 * leaves it to a bundler (preserve).
 */
export const resolutions = [
  { moduleResolution: 'node', module: 'commonjs', cts: undefined }, // "node10": typesVersions, no exports
  { moduleResolution: 'node16', module: 'node16', cts: 'import() only' },
  { moduleResolution: 'nodenext', module: 'nodenext', cts: 'import and import()' },
  { moduleResolution: 'bundler', module: 'preserve', cts: 'import and import()' },
] as const;

const specifier = (entry: string) => (entry === '.' ? 'pg-replica-router' : `pg-replica-router/${entry.slice(2)}`);
const local = (entry: string) => (entry === '.' ? 'root' : entry.slice(2));
const probes = Object.entries(entryProbes);

function consumerTs(): string {
  const imports = probes.map(([entry, p]) => `import { ${p.name} as ${local(entry)} } from '${specifier(entry)}';`);
  const checks = probes.map(([entry, p]) => `export const ${local(entry)}Typed: Typed<${p.type(local(entry))}> = true;`);
  return [
    ...imports,
    'type IsAny<T> = 0 extends 1 & T ? true : false;',
    "type Typed<T> = IsAny<T> extends true ? 'its types did not resolve' : true;",
    ...checks,
    '',
  ].join('\n');
}

const runtimeProbes = (load: (entry: string) => string) =>
  `{ ${probes.map(([entry, p]) => `${JSON.stringify(entry)}: typeof ${load(entry)}.${p.name}`).join(', ')} }`;

function tsconfig(compilerOptions: Record<string, unknown>, include: string[]): string {
  const base = { strict: true, noEmit: true, target: 'es2022', types: ['node'], skipLibCheck: true };
  return JSON.stringify({ compilerOptions: { ...base, ...compilerOptions }, include }, null, 2);
}

/** Writes the application's files into `appDir` (whose node_modules holds the package). */
export async function writeConsumerApp(appDir: string): Promise<void> {
  const files: Record<string, string> = {
    'package.json': JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
    'consumer.ts': consumerTs(),
    'load.mjs': [
      ...probes.map(([entry]) => `import * as ${local(entry)} from '${specifier(entry)}';`),
      `console.log(JSON.stringify(${runtimeProbes(local)}));`,
    ].join('\n'),
    'load.cjs': `console.log(JSON.stringify(${runtimeProbes((entry) => `require('${specifier(entry)}')`)}));\n`,
    'cts/static.cts': "import { createRouter } from 'pg-replica-router';\nexport const make = createRouter;\n",
    'cts/dynamic.cts': [
      "import type { Router } from 'pg-replica-router' with { 'resolution-mode': 'import' };",
      'export async function makeRouter(url: string): Promise<Router> {',
      "  const { createRouter } = await import('pg-replica-router');",
      '  return createRouter({ primary: { connectionString: url }, replicas: [] });',
      '}',
      '',
    ].join('\n'),
  };
  for (const { moduleResolution, module, cts } of resolutions) {
    files[`tsconfig.${moduleResolution}.json`] = tsconfig({ moduleResolution, module }, cts ? ['consumer.ts', 'cts'] : ['consumer.ts']);
  }
  await writeFiles(appDir, files);
}

/** Runs `tsc -p` with the app's tsconfig for `moduleResolution`; resolves to its error lines (none: it passed). */
export async function typecheck(appDir: string, moduleResolution: string): Promise<string[]> {
  const tsc = join(projectRoot, 'node_modules/typescript/bin/tsc');
  const result = await run(process.execPath, [tsc, '-p', `tsconfig.${moduleResolution}.json`, '--pretty', 'false'], { cwd: appDir }).then(
    ({ stdout }) => stdout,
    (err: { stdout?: string; message: string }) => err.stdout || err.message,
  );
  return result.split('\n').filter((line) => line.includes('error TS'));
}

/** Runs a script of the app with Node; resolves to what it printed, parsed as JSON. */
export async function runScript(appDir: string, script: string): Promise<unknown> {
  const { stdout } = await run(process.execPath, [script], { cwd: appDir });
  return JSON.parse(stdout) as unknown;
}
