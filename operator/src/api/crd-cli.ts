#!/usr/bin/env node
/**
 * Writes the generated CRD into crds/ (run from the repository root: `npm run crds`).
 * `--check` writes nothing and exits 1 when the committed file differs from the generated one.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CRD_FILE, bloomDeploymentCrdYaml } from './crd.js';

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const file = resolve(process.cwd(), CRD_FILE);
  const generated = bloomDeploymentCrdYaml();
  const current = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  if (check) {
    if (current === generated) return 0;
    console.error(`${CRD_FILE} is stale: run \`npm run build && npm run crds\` and commit the result`);
    return 1;
  }
  if (current !== generated) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, generated);
    console.log(`wrote ${CRD_FILE}`);
  } else {
    console.log(`${CRD_FILE} is up to date`);
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
