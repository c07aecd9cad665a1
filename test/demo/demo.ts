#!/usr/bin/env node
/**
 * `npm run demo`: the whole path on this machine, no GPU and no container runtime needed.
 *
 * hack/setup.sh (tools, Python env, build) -> a local control plane at .cluster/demo with no fake
 * nodes -> a tiny BLOOM trained on real text, converted into INT8 shards (cached in ~/.cache/bloom-operator/demo)
 * -> the operator (the real CLI) and a process node (test/processnode: runs each pod as a local launcher process with its ranks as
 * bloom-worker processes) -> examples/tiny-bloom.yaml applied -> wait for Ready -> a streamed completion
 * through the client Service name, next to transformers' fp32 answer -> `kubectl get bd` and the pods. Then it stays up until Ctrl-C,
 * printing how to kill a rank, scale and tear down. `npm run demo -- --once`: the same flow, then
 * everything is torn down and it exits 0 (non-zero with the reason on failure).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { CustomObjectsApi } from '@kubernetes/client-node';
import yaml from 'js-yaml';
import { API_GROUP, API_VERSION, PLURAL } from '../../operator/src/api/constants.js';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { waitCrdsEstablished } from '../cluster/crds.js';
import { LocalCluster } from '../cluster/local-cluster.js';
import { repoRoot, toolPath } from '../cluster/paths.js';
import { freePort, startProcess, stopProcess, waitFor, type ManagedProcess } from '../cluster/processes.js';
import { complete, completeStreamed, ensureTinyModel, referenceCompletion, startProcessNode, tail, type ProcessNodeHandle } from '../processnode/harness.js';

const run = promisify(execFile);
const once = process.argv.includes('--once');
const root = repoRoot();
const started = Date.now();
const say = (line: string) => console.log(`[demo +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);

const cluster = new LocalCluster(join(root, '.cluster', 'demo'));
const manifestFile = join(root, 'examples', 'tiny-bloom.yaml');
const manifest = yaml.load(readFileSync(manifestFile, 'utf8')) as BloomDeployment;
const bdName = manifest.metadata.name!;
const namespace = 'default';
const hostRoot = join(cluster.dir, 'hostroot');
const NEW_TOKENS = 24;
/** Which of the 8 held-out prompts the demo completes (the one whose answer reads most like prose). */
const DEMO_PROMPT = 4;
const indent = (text: string) => text.replace(/\n/g, '\n    ');
let demoPrompt = '';
const model0Line = 'the demo model: a tiny BLOOM trained here, on the docs of the installed npm and Python packages (cached after the first run)';

/** What train_tiny_bloom.py reports (hf/training.json). */
interface Training {
  seconds: number;
  held_out_loss: number;
  uniform_loss: number;
  held_out_prompts: string[];
}

let node: ProcessNodeHandle | undefined;
let operator: ManagedProcess | undefined;
let operatorLog = '';
let tearingDown: Promise<void> | undefined;

async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run(toolPath('kubectl'), ['--kubeconfig', cluster.kubeconfig, ...args], { maxBuffer: 16 << 20 });
  return stdout;
}

async function teardown(): Promise<void> {
  tearingDown ??= (async () => {
    say('tearing down: process node (stops every rank process), operator, control plane');
    await node?.stop().catch(() => {});
    if (operator) await stopProcess(operator).catch(() => {});
    await cluster.down().catch(() => {});
    rmSync(pidFile(), { force: true });
    say('torn down');
  })();
  return tearingDown;
}

/** Pids of the demo's own processes, so `--down` (or the next demo) can stop a demo whose terminal went away. */
const pidFile = () => join(cluster.dir, 'demo-pids.json');
function writePids(): void {
  writeFileSync(pidFile(), JSON.stringify([node?.process, operator].filter((p) => p !== undefined)));
}

async function stopEarlierDemo(): Promise<void> {
  if (existsSync(pidFile())) {
    for (const p of JSON.parse(readFileSync(pidFile(), 'utf8')) as ManagedProcess[]) await stopProcess(p, 30_000);
    rmSync(pidFile(), { force: true });
  }
  await cluster.down();
}

async function getBd(): Promise<BloomDeployment> {
  const api = cluster.loadKubeConfig().makeApiClient(CustomObjectsApi);
  return (await api.getNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace, plural: PLURAL, name: bdName })) as BloomDeployment;
}

async function waitReady(what: string, ready: (bd: BloomDeployment) => boolean, timeoutMs: number): Promise<BloomDeployment> {
  let last: BloomDeployment | undefined;
  let lastLine = '';
  try {
    await waitFor(what, async () => {
      last = await getBd();
      const line = (last.status?.groups ?? []).map((g) => `group ${g.index}: ${g.phase} (epoch ${g.epoch}, ${g.readyPods ?? 0} pod(s), ${g.readyRanks}/${last!.spec.tensorParallelSize} ranks ready)`).join('; ');
      if (line && line !== lastLine) say(`  ${line}`);
      lastLine = line;
      return ready(last);
    }, timeoutMs, 500);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nlast status: ${JSON.stringify(last?.status)}`);
  }
  return last!;
}

async function main(): Promise<void> {
  say(`starting a local control plane in ${relative(root, cluster.dir)} (no fake nodes: the process node is the only node)`);
  await stopEarlierDemo();
  await cluster.up({ nodes: 0, log: (l) => say(`  ${l}`) });

  say(model0Line);
  const model = await ensureTinyModel([1, 4], (l) => say(`  ${l}`), true);
  const training = JSON.parse(readFileSync(join(model.hf, 'training.json'), 'utf8')) as Training;
  say(`tiny BLOOM trained on real text ${model.cached ? '(from the cache)' : `in ${training.seconds} s`}: held-out loss ${training.held_out_loss.toFixed(2)} `
    + `(a uniform guess: ${training.uniform_loss.toFixed(2)}); INT8 shards for TP=4: ${model.shards[4]}`);
  // stage the shards where the manifest's hostPath points, under the process node's host-path root
  const hostPath = manifest.spec.model.source.hostPath?.path;
  if (!hostPath) throw new Error(`${manifestFile}: the demo needs a hostPath model source`);
  const staged = join(hostRoot, hostPath, manifest.spec.model.path);
  rmSync(staged, { recursive: true, force: true });
  mkdirSync(dirname(staged), { recursive: true });
  symlinkSync(model.shards[4]!, staged);

  say('installing the CRD (kubectl apply --server-side -f crds/)');
  await kubectl('apply', '--server-side', '--force-conflicts', '-f', join(root, 'crds'));
  await waitCrdsEstablished(kubectl);

  say('starting the process node proc-node-0 (8 nvidia.com/gpu; each pod runs as a local bloom-worker launcher with one rank process per GPU)');
  node = await startProcessNode(cluster, { name: 'proc-node-0', gpus: 8, hostPathRoot: hostRoot });
  writePids();

  const port = await freePort();
  operatorLog = join(cluster.logDir, 'operator.log');
  say('starting the operator (bloom-operator run)');
  operator = startProcess('bloom-operator', process.execPath, [join(root, 'dist', 'operator', 'src', 'cli', 'main.js'), 'run',
    '--kubeconfig', cluster.kubeconfigFor('operator'), '--metrics-port', String(port), '--health-port', String(port), '--bind-address', '127.0.0.1'], operatorLog);
  writePids();
  await waitFor(`the operator to be ready (log ${operatorLog})`, async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 60_000, 250);

  say(`kubectl apply -f ${relative(root, manifestFile)}`);
  console.log((await kubectl('apply', '-n', namespace, '-f', manifestFile)).trim());
  await waitReady('the group to be Ready', (bd) => (bd.status?.readyReplicas ?? 0) >= 1, 300_000);

  const url = `http://${bdName}.${namespace}.svc.cluster.local:${manifest.spec.worker.httpPort ?? 8000}`;
  const prompt = (demoPrompt = training.held_out_prompts[DEMO_PROMPT]!);
  await waitFor('the client Service name to answer', async () => { await complete(url, prompt, 1); return true; }, 30_000, 500);
  say(`POST ${url}/v1/completions ${JSON.stringify({ prompt, max_tokens: NEW_TOKENS, temperature: 0, stream: true })}`);
  process.stdout.write(`\n  prompt (held out of the training text): ${prompt}\n  bloom-worker, INT8, TP=4 (one pod, 4 rank processes), streamed:\n    ${prompt}`);
  const answer = await completeStreamed(url, prompt, NEW_TOKENS, (delta) => process.stdout.write(indent(delta)));
  const reference = await referenceCompletion(model.hf, prompt, NEW_TOKENS);
  process.stdout.write(`\n  transformers, fp32, the original weights:\n    ${prompt}${indent(reference.text)}\n\n`);
  const agree = answer.tokenIds.findIndex((t, i) => t !== reference.tokenIds[i]);
  const same = agree < 0 && answer.tokenIds.length === reference.tokenIds.length;
  say(same ? `the two agree on all ${answer.tokenIds.length} tokens` : `the two agree on the first ${agree < 0 ? answer.tokenIds.length : agree} of ${reference.tokenIds.length} tokens`);
  if (answer.tokenIds.length === 0 || answer.text.includes('\uFFFD')) throw new Error(`unexpected completion ${JSON.stringify(answer)}`);

  console.log('\n$ kubectl get bd\n' + (await kubectl('get', 'bd', '-n', namespace)).trimEnd());
  console.log('\n$ kubectl get pods -o wide\n' + (await kubectl('get', 'pods', '-n', namespace, '-o', 'wide')).trimEnd() + '\n');
}

function instructions(): string {
  const k = `${relative(process.cwd(), toolPath('kubectl')) || toolPath('kubectl')} --kubeconfig ${relative(process.cwd(), cluster.kubeconfig)}`;
  return `
The demo stays up. In another terminal:

  export KUBECTL="${k}"
  $KUBECTL get bd ${bdName} -w                         # watch the group's phase and epoch
  $KUBECTL get pods -o wide                           # the group's pod (4 GPUs, 4 rank processes), its loopback pod IP
  curl -s ${`http://${bdName}.${namespace}.svc.cluster.local:8000`}/v1/completions -H 'Content-Type: application/json' \\
       -d '${JSON.stringify({ prompt: demoPrompt, max_tokens: NEW_TOKENS, temperature: 0 }).replace(/'/g, "'\\''")}'

  # kill one of the 4 rank processes of the pod: its launcher stops the others and exits,
  # and the operator recreates the whole group with a new epoch
  kill -9 $(pgrep -P $(curl -s ${node?.url}/pods | python3 -c 'import json,sys; print([p["pid"] for p in json.load(sys.stdin) if "-g0-p0-" in p["name"] and p.get("pid")][0])') | head -n 2 | tail -n 1)
  #   (or delete its pod: $KUBECTL delete pod ${bdName}-g0-p0-e<EPOCH>)

  # scale to two groups (both fit the process node's 8 GPUs)
  $KUBECTL scale bd ${bdName} --replicas 2

  logs: ${relative(process.cwd(), cluster.logDir)}/ (operator.log, proc-node-0.log) and ${relative(process.cwd(), join(cluster.stateDir, 'processnode', 'proc-node-0', 'pods'))}/*/worker.log

Ctrl-C here tears everything down (rank processes, process node, operator, control plane).
If this terminal went away: node dist/test/demo/demo.js --down
`;
}

process.on('SIGINT', () => { void teardown().then(() => process.exit(130)); });
process.on('SIGTERM', () => { void teardown().then(() => process.exit(143)); });

if (process.argv.includes('--down')) {
  await stopEarlierDemo();
  say('stopped the demo (process node, operator, control plane)');
  process.exit(0);
}

try {
  await main();
} catch (err) {
  console.error(`\n[demo] FAILED: ${(err as Error).message}`);
  if (node) {
    for (const p of await node.pods().catch(() => [])) console.error(`--- ${p.namespace}/${p.name} (${p.state}) ${p.log}\n${tail(p.log, 1200)}`);
    console.error(`--- process node log ${node.logFile}\n${tail(node.logFile, 2000)}`);
  }
  if (operatorLog) console.error(`--- operator log ${operatorLog}\n${tail(operatorLog, 2000)}`);
  await teardown();
  process.exit(1);
}

if (once) {
  await teardown();
  say('demo succeeded (--once)');
  process.exit(0);
}
console.log(instructions());
setInterval(() => {}, 1 << 30);
