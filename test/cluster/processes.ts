import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface ManagedProcess { name: string; pid: number; args: string[] }

/** A free TCP port on loopback (the kernel picks it; a small race remains until it is bound). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('no port'));
      server.close(() => resolve(address.port));
    });
  });
}

/**
 * Starts a long-running process in its own session, output appended to logFile. onExit gets its
 * exit code (null when a signal ended it) if it exits while this process lives.
 */
export function startProcess(name: string, command: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env,
  onExit?: (code: number | null) => void): ManagedProcess {
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  child.unref();
  if (onExit) child.once('exit', onExit);
  if (child.pid === undefined) throw new Error(`failed to start ${name} (${command})`);
  return { name, pid: child.pid, args };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGTERM to the process group, then SIGKILL after graceMs; resolves once it is gone. */
export async function stopProcess(p: ManagedProcess, graceMs = 5000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try { process.kill(-p.pid, sig); } catch { try { process.kill(p.pid, sig); } catch { /* already gone */ } }
  };
  if (!isAlive(p.pid)) return;
  if (graceMs > 0) signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(p.pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(p.pid)) signal('SIGKILL');
  while (isAlive(p.pid)) await sleep(20);
}

export function readPids(file: string): ManagedProcess[] {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as ManagedProcess[]) : [];
}

export function writePids(file: string, processes: ManagedProcess[]): void {
  writeFileSync(file, JSON.stringify(processes, null, 2));
}

/** Polls check() until it returns true or the deadline passes, then throws with what was awaited. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (e) {
      lastError = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` + (lastError ? `: ${String(lastError)}` : ''));
}
