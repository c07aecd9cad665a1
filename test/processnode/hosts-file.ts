/**
 * The process node's "cluster DNS": a managed block in /etc/hosts (the system resolver, so Python,
 * torch's C++ TCPStore and Node's fetch all see the names). Dev/test only.
 *
 *   # BEGIN bloom-process-node <node>
 *   127.90.0.2 tiny-g0-r0.tiny-g0.demo.svc.cluster.local
 *   # END bloom-process-node <node>
 *
 * One block per node name; writes replace only that block, under a lock directory (several
 * process nodes may share one machine), via a temp file renamed over the original (atomic for
 * readers); where /etc/hosts is a bind mount (docker) and rename fails, the file is rewritten in place.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const DEFAULT_HOSTS_FILE = '/etc/hosts';

const BEGIN = /^# BEGIN bloom-process-node (\S+)(?: pid (\d+))?$/;
const END = /^# END bloom-process-node (\S+)$/;

/** A name -> IPv4 map rendered as hosts lines, sorted for stable output. */
export type HostRecords = ReadonlyMap<string, string>;

/** The text without the blocks `drop(node, pid)` selects. */
function without(text: string, drop: (node: string, pid: number | undefined) => boolean): string[] {
  const out: string[] = [];
  let inside: string | undefined;
  for (const line of text.split('\n')) {
    const b = BEGIN.exec(line);
    if (inside === undefined && b && drop(b[1]!, b[2] ? Number(b[2]) : undefined)) { inside = b[1]!; continue; }
    if (inside !== undefined) {
      if (END.exec(line)?.[1] === inside) inside = undefined;
      continue;
    }
    out.push(line);
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out;
}

/** The file's text with the node's block replaced by `records` (removed when there are none). Pure. */
export function withBlock(text: string, node: string, records: HostRecords, pid = process.pid): string {
  const out = without(text, (n) => n === node);
  if (records.size > 0) {
    out.push(`# BEGIN bloom-process-node ${node} pid ${pid}`);
    for (const [name, ip] of [...records.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) out.push(`${ip} ${name}`);
    out.push(`# END bloom-process-node ${node}`);
  }
  return out.join('\n') + '\n';
}

/** The file's text without blocks whose writer process is gone (a process node that was killed). Pure. */
export function withoutStaleBlocks(text: string, alive: (pid: number) => boolean): string {
  return without(text, (_n, pid) => pid !== undefined && !alive(pid)).join('\n') + '\n';
}

/** The records of the node's block in `text` (to test and to debug). Pure. */
export function readBlock(text: string, node: string): Map<string, string> {
  const records = new Map<string, string>();
  let inside = false;
  for (const line of text.split('\n')) {
    if (BEGIN.exec(line)?.[1] === node) inside = true;
    else if (inside && END.exec(line)?.[1] === node) inside = false;
    else if (inside) {
      const [ip, name] = line.trim().split(/\s+/);
      if (ip && name) records.set(name, ip);
    }
  }
  return records;
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function withLock<T>(file: string, fn: () => T): T {
  const lock = join(dirname(file), `.${file.split('/').pop()}.bloom-lock`);
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // a lock older than 10 s belongs to a process that died while holding it
      try { if (Date.now() - statSync(lock).mtimeMs > 10_000) rmdirSync(lock); } catch { /* raced */ }
      if (Date.now() > deadline) throw new Error(`cannot lock ${file} (${lock} exists)`);
      sleepSync(20);
    }
  }
  try {
    return fn();
  } finally {
    try { rmdirSync(lock); } catch { /* already gone */ }
  }
}

/** Rewrites the hosts file through `edit` (no write when nothing changes). */
export function editHosts(file: string, edit: (text: string) => string): void {
  withLock(file, () => {
    const before = readFileSync(file, 'utf8');
    const after = edit(before);
    if (after === before) return;
    const mode = statSync(file).mode & 0o7777;
    const tmp = join(dirname(file), `.${file.split('/').pop()}.${process.pid}.tmp`);
    writeFileSync(tmp, after, { mode });
    try {
      chmodSync(tmp, mode);
      renameSync(tmp, file);
    } catch {
      // a bind-mounted file cannot be replaced: rewrite it in place
      writeFileSync(file, after);
      try { unlinkSync(tmp); } catch { /* already gone */ }
    }
  });
}

/** Replaces the node's block in the hosts file. */
export function writeBlock(file: string, node: string, records: HostRecords): void {
  editHosts(file, (text) => withBlock(text, node, records));
}
