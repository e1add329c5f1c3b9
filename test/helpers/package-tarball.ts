// The package as npm publishes it: `npm pack` run on a copy of the working tree whose dist/ was
// just built by the project's own build script, so the tarball reflects today's sources,
// tsconfig.build.json and package.json (`files`, `exports`, `typesVersions`), not whatever dist/
// someone last built. Then unpacked under an application's node_modules, as `npm install` would.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readdir, rename, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const run = promisify(execFile);

/** The project's root directory (where package.json is). */
export const projectRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface PackedFile {
  path: string;
  size: number;
}

export interface PackedPackage {
  /** Path of the `.tgz`. */
  tarball: string;
  /** Every file in the tarball, as `npm pack --json` lists it. */
  files: PackedFile[];
  /** The tarball's size in bytes (gzipped). */
  size: number;
  unpackedSize: number;
}

interface NpmPackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: PackedFile[];
}

/**
 * Copies the working tree (files git tracks or would track) to `workDir/stage`, runs `npm run
 * build` there and packs it into `workDir`. Scripts are not run by `npm pack` (the build just ran).
 */
export async function packPackage(workDir: string): Promise<PackedPackage> {
  const stage = join(workDir, 'stage');
  await copyWorkingTree(stage);
  await symlink(join(projectRoot, 'node_modules'), join(stage, 'node_modules'));
  await run('npm', ['run', 'build'], { cwd: stage });
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', workDir], {
    cwd: stage,
    maxBuffer: 16 * 1024 * 1024,
  });
  const [result] = JSON.parse(stdout) as NpmPackResult[];
  if (!result) throw new Error(`npm pack printed no result: ${stdout}`);
  return { tarball: join(workDir, result.filename), files: result.files, size: result.size, unpackedSize: result.unpackedSize };
}

/**
 * Unpacks `tarball` as `appDir/node_modules/pg-replica-router` and links every other package of
 * this project's node_modules beside it (no network). Returns the installed package's directory.
 */
export async function installPackage(tarball: string, appDir: string): Promise<string> {
  const modules = join(appDir, 'node_modules');
  await mkdir(modules, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', appDir]);
  const installed = join(modules, 'pg-replica-router');
  await rename(join(appDir, 'package'), installed);
  for (const entry of await readdir(join(projectRoot, 'node_modules'))) {
    if (entry.startsWith('.') || entry === 'pg-replica-router') continue;
    await symlink(join(projectRoot, 'node_modules', entry), join(modules, entry));
  }
  return installed;
}

/** Writes `files` (path relative to `dir` → content), creating directories as needed. */
export async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
}

async function copyWorkingTree(stage: string): Promise<void> {
  // Tracked and untracked-but-not-ignored files: others' work in progress builds too, while
  // node_modules, dist/ and the test clusters' scratch directories (all ignored) stay out.
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: projectRoot,
    maxBuffer: 16 * 1024 * 1024,
  });
  for (const path of new Set(stdout.split('\0').filter(Boolean))) {
    await mkdir(dirname(join(stage, path)), { recursive: true });
    await copyFile(join(projectRoot, path), join(stage, path)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err; // deleted since git listed it
    });
  }
}
