/**
 * Helpers shared by the serving e2e test and `npm run demo`: run the process node CLI as its own
 * process, build (and cache) the tiny BLOOMs (random, or trained on real text) and their INT8 shards, run a TP=1 reference worker,
 * and call a worker's API.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { LocalCluster } from '../cluster/local-cluster.js';
import { repoRoot } from '../cluster/paths.js';
import { freePort, isAlive, startProcess, stopProcess, waitFor, type ManagedProcess } from '../cluster/processes.js';
import type { PodInfo } from './process-node.js';

const run = promisify(execFile);

export interface ProcessNodeHandle {
  name: string;
  url: string;
  logFile: string;
  process: ManagedProcess;
  pods(): Promise<PodInfo[]>;
  stop(): Promise<void>;
}

export interface ProcessNodeStartOptions {
  name?: string;
  gpus?: number;
  hostPathRoot?: string;
  taint?: boolean;
  kubeconfig?: string;
  /** Extra node labels (e.g. an NVLink clique shared by several process nodes). */
  labels?: Record<string, string>;
}

/** Starts `node dist/test/processnode/cli.js` against the cluster and waits until its node is registered. */
export async function startProcessNode(cluster: LocalCluster, o: ProcessNodeStartOptions = {}): Promise<ProcessNodeHandle> {
  const name = o.name ?? 'proc-node-0';
  const port = await freePort();
  const logFile = join(cluster.logDir, `${name}.log`);
  const args = [
    join(repoRoot(), 'dist', 'test', 'processnode', 'cli.js'), '--kubeconfig', o.kubeconfig ?? cluster.kubeconfig, '--name', name,
    '--gpus', String(o.gpus ?? 8), '--port', String(port), '--state-dir', join(cluster.stateDir, 'processnode', name),
    ...(o.hostPathRoot ? ['--host-path-root', o.hostPathRoot] : []), ...(o.taint === false ? ['--no-taint'] : []),
    ...Object.entries(o.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
  ];
  const proc = startProcess(name, process.execPath, args, logFile);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`process node ${name} ready (log ${logFile})`, async () => {
      if (!isAlive(proc.pid)) throw new Error(`process node exited:\n${tail(logFile, 2000)}`);
      return (await fetch(`${url}/readyz`)).ok;
    }, 60_000, 200);
  } catch (err) {
    await stopProcess(proc);
    throw err;
  }
  return {
    name, url, logFile, process: proc,
    pods: async () => (await (await fetch(`${url}/pods`)).json()) as PodInfo[],
    stop: () => stopProcess(proc, 30_000),
  };
}

export function tail(file: string, chars: number): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.slice(-chars);
  } catch {
    return `(no ${file})`;
  }
}

// ---- the tiny model ----------------------------------------------------------------------

const SCRIPT = join('test', 'processnode', 'make_tiny_model.py');

export interface TinyModel {
  dir: string;
  /** The Hugging Face checkpoint the shards were converted from. */
  hf: string;
  /** Shard directory per tensor-parallel size. */
  shards: Record<number, string>;
  cached: boolean;
}

/**
 * A tiny BLOOM (random, or with `trained` the one trained on real text by train_tiny_bloom.py)
 * converted into INT8 shards for each TP size, built by make_tiny_model.py unless its cache under
 * ~/.cache/bloom-operator/demo (BLOOM_DEMO_CACHE) has it. The script's progress goes to `log`.
 */
export async function ensureTinyModel(tps: number[] = [1, 4], log: (l: string) => void = () => {}, trained = false): Promise<TinyModel> {
  const python = join(repoRoot(), '.venv', 'bin', 'python');
  const args = [join(repoRoot(), SCRIPT), ...tps.flatMap((tp) => ['--tp', String(tp)]), ...(trained ? ['--trained'] : [])];
  const lines: string[] = [];
  const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr.on('data', (d: Buffer) => stderr.push(d.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    if (!line.startsWith('{')) log(line);
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const last = lines.at(-1) ?? '';
  if (code !== 0 || !last.startsWith('{')) throw new Error(`${SCRIPT} exited with ${code}:\n${stderr.join('').slice(-3000)}`);
  return JSON.parse(last) as TinyModel;
}

// ---- a reference worker and the API ------------------------------------------------------

export interface ReferenceWorker {
  url: string;
  process: ManagedProcess;
  logFile: string;
  stop(): Promise<void>;
}

/** A TP=1 bloom-worker on its own loopback address (the reference the group must match). */
export async function startReferenceWorker(shardDir: string, ip: string, logFile: string): Promise<ReferenceWorker> {
  const http = 18_000 + Math.floor(Math.random() * 2000);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH, HOME: process.env.HOME, PYTHONUNBUFFERED: '1', OMP_NUM_THREADS: '1',
    // a one-GPU pod's env (the launcher starts its one rank process)
    WORLD_SIZE: '1', NNODES: '1', NODE_RANK: '0', NPROC_PER_NODE: '1', MASTER_ADDR: ip, MASTER_PORT: String(http + 2),
    BLOOM_DEPLOYMENT: 'reference', BLOOM_MODEL_DIR: shardDir, BLOOM_TENSOR_PARALLEL_SIZE: '1', BLOOM_GROUP: '0',
    BLOOM_EPOCH: '1', BLOOM_HTTP_PORT: String(http), BLOOM_HEALTH_PORT: String(http + 1), BLOOM_RENDEZVOUS_TIMEOUT: '60', BLOOM_TERMINATION_GRACE_SECONDS: '5',
    BLOOM_BIND_ADDRESS: ip,
  };
  const proc = startProcess('reference-worker', join(repoRoot(), '.venv', 'bin', 'bloom-worker'), [], logFile, env);
  const url = `http://${ip}:${http}`;
  try {
    await waitFor(`reference worker ready (log ${logFile})`, async () => {
      if (!isAlive(proc.pid)) throw new Error(`reference worker exited:\n${tail(logFile, 2000)}`);
      return (await fetch(`http://${ip}:${http + 1}/readyz`)).ok;
    }, 120_000, 250);
  } catch (err) {
    await stopProcess(proc);
    throw err;
  }
  return { url, process: proc, logFile, stop: () => stopProcess(proc) };
}

/** POST /generate, greedy: the output token ids. */
export async function generateIds(url: string, inputIds: number[], maxNewTokens: number): Promise<number[]> {
  const res = await fetch(`${url}/generate`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ input_ids: inputIds, max_new_tokens: maxNewTokens, temperature: 0, stop_at_eos: false }),
    signal: AbortSignal.timeout(60_000),
  });
  const body = await res.text();
  if (!res.ok) throw new Error(`${url}/generate: HTTP ${res.status}: ${body}`);
  return (JSON.parse(body) as { output_ids: number[] }).output_ids;
}

export interface Completion { text: string; tokenIds: number[] }

/** POST /v1/completions, greedy (temperature 0). */
/** POST /v1/completions with stream: true, greedy: calls `onText` with every text delta as it arrives. */
export async function completeStreamed(url: string, prompt: string, maxTokens: number, onText: (delta: string) => void): Promise<Completion> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, stream: true }),
    signal: AbortSignal.timeout(60_000),
  });
  if (!res.ok || !res.body) throw new Error(`${url}/v1/completions: HTTP ${res.status}: ${await res.text()}`);
  const out: Completion = { text: '', tokenIds: [] };
  let pending = '';
  for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let end: number;
    while ((end = pending.indexOf('\n\n')) >= 0) {
      const event = pending.slice(0, end).replace(/^data: /, '');
      pending = pending.slice(end + 2);
      if (event === '[DONE]') return out;
      const choice = (JSON.parse(event) as { choices: Array<{ text: string; token_ids: number[] }> }).choices[0]!;
      out.text += choice.text;
      out.tokenIds.push(...choice.token_ids);
      if (choice.text) onText(choice.text);
    }
  }
  throw new Error(`${url}/v1/completions: the stream ended without [DONE]`);
}

/** transformers' fp32 greedy completion of `prompt` on the Hugging Face checkpoint `hf` (hf_complete.py). */
export async function referenceCompletion(hf: string, prompt: string, maxTokens: number): Promise<Completion> {
  const python = join(repoRoot(), '.venv', 'bin', 'python');
  const { stdout } = await run(python, [join(repoRoot(), 'test', 'processnode', 'hf_complete.py'), hf, prompt, String(maxTokens)], { maxBuffer: 16 << 20 });
  const body = JSON.parse(stdout.trim().split('\n').at(-1)!) as { text: string; token_ids: number[] };
  return { text: body.text, tokenIds: body.token_ids };
}

export async function complete(url: string, prompt: string, maxTokens: number): Promise<Completion> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0 }),
    signal: AbortSignal.timeout(60_000),
  });
  const body = await res.text();
  if (!res.ok) throw new Error(`${url}/v1/completions: HTTP ${res.status}: ${body}`);
  const choice = (JSON.parse(body) as { choices: Array<{ text: string; token_ids: number[] }> }).choices[0]!;
  return { text: choice.text, tokenIds: choice.token_ids };
}
