// Module resolution hooks for built.mjs: lib/**/*.{js,ts} and adapters/**/*.{js,ts} → dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('../../', import.meta.url).href;
const SOURCES = ['lib/', 'adapters/'];

function built(url) {
  if (!url.startsWith(root)) return undefined;
  const path = url.slice(root.length);
  if (!SOURCES.some((dir) => path.startsWith(dir)) || !/\.(ts|js)$/.test(path)) return undefined;
  const target = `${root}dist/${path.replace(/\.ts$/, '.js')}`;
  if (!existsSync(fileURLToPath(target)))
    throw new Error(`${target} is missing: run \`npm run build\` first (benchmarks measure the built package)`);
  return target;
}

export async function resolve(specifier, context, nextResolve) {
  if (specifier.startsWith('.') && context.parentURL) {
    const target = built(new URL(specifier, context.parentURL).href);
    if (target) return { url: target, format: 'module', shortCircuit: true };
  }
  const result = await nextResolve(specifier, context);
  const target = built(result.url);
  return target ? { ...result, url: target, format: 'module' } : result;
}
