/**
 * What GitOps tools make of an object, from their own code: bloom-gitops (main.go here, built by
 * hack/gitops-helper.sh) computes kstatus with sigs.k8s.io/cli-utils (what Flux's health checks
 * run) and evaluates an Argo CD health script with gopher-lua the way Argo CD does. The script is
 * the one in the README, so the README stays the tested source.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, toolPath } from '../cluster/paths.js';

export interface Health {
  status: string;
  message: string;
}
export interface GitopsHealth {
  /** sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute: InProgress, Current, Failed, Terminating, ... */
  kstatus: Health;
  /** Argo CD's verdict from the README's health script: Healthy, Progressing, Degraded, ... */
  argo: Health;
}

const SECTION = '### GitOps and Pulumi';

/** The Lua health check of the README's "GitOps and Pulumi" section (its only lua block), as a user would paste it. */
export function readmeHealthLua(readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8')): string {
  const start = readme.indexOf(SECTION);
  if (start < 0) throw new Error(`README.md has no "${SECTION}" section`);
  const rest = readme.slice(start + SECTION.length);
  const next = rest.search(/\n#{2,3} /);
  const section = next < 0 ? rest : rest.slice(0, next);
  const blocks = [...section.matchAll(/\n( *)```lua\n([\s\S]*?)\n\1```/g)];
  if (blocks.length !== 1) throw new Error(`expected one lua block in "${SECTION}", found ${blocks.length}`);
  const [, indent, body] = blocks[0]!;
  return body!.split('\n').map((line) => (line.startsWith(indent!) ? line.slice(indent!.length) : line)).join('\n') + '\n';
}

let scriptFile: string | undefined;

/** Runs bloom-gitops on one object (as the API server returned it, JSON) with the README's health script. */
export function gitopsHealth(object: unknown, script?: string): Promise<GitopsHealth> {
  let file: string;
  if (script === undefined) {
    if (!scriptFile) {
      scriptFile = join(mkdtempSync(join(tmpdir(), 'bloom-gitops-')), 'health.lua');
      writeFileSync(scriptFile, readmeHealthLua());
    }
    file = scriptFile;
  } else {
    file = join(mkdtempSync(join(tmpdir(), 'bloom-gitops-')), 'health.lua');
    writeFileSync(file, script);
  }
  return new Promise((resolve, reject) => {
    const child = execFile(toolPath('bloom-gitops'), ['--lua', file], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`bloom-gitops failed: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout) as GitopsHealth);
    });
    child.stdin!.end(JSON.stringify(object));
  });
}

/** The two verdicts in one line, for assertions and logs: "Progressing/InProgress". */
export const verdict = (h: GitopsHealth) => `${h.argo.status}/${h.kstatus.status}`;
