import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest ancestor of this file that holds package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

/** A tool built by hack/toolchain.sh and linked into .cluster/bin. */
export function toolPath(name: string): string {
  const path = join(repoRoot(), '.cluster', 'bin', name);
  if (!existsSync(path)) throw new Error(`${path} is missing: run "bash hack/setup.sh --tools" first`);
  return path;
}

/** Manifests a tool's build brought along (hack/toolchain.sh links them into .cluster/manifests): e.g. Kueue's CRDs. */
export function toolManifests(name: string): string {
  const path = join(repoRoot(), '.cluster', 'manifests', name);
  if (!existsSync(path)) throw new Error(`${path} is missing: run "bash hack/setup.sh --tools" first`);
  return path;
}

/** Source-tree asset next to the compiled file (tsc does not copy non-TS files). */
export function sourceAsset(...parts: string[]): string {
  return resolve(repoRoot(), ...parts);
}
