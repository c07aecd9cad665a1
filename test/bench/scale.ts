/**
 * `npm run bench:scale`: the operator at cluster scale on a local control plane with kwok GPU nodes.
 *
 *   1. baseline: one deployment of --groups groups alone (writes per group to compare with);
 *   2. --deployments deployments of --groups groups applied at the same moment on a cluster they fit
 *      exactly (nodes = deployments x groups x pods per group, placement.exclusive): time to all Ready,
 *      groups recreated (epoch > 1 or status restarts), operator API writes per group;
 *   3. idle: everything Ready and unchanged for --idle-seconds: operator CPU seconds per idle minute,
 *      steady RSS;
 *   4. --large groups (0 skips it): as many groups at once, for the RSS with that many pods cached,
 *      then idle again (steady RSS, CPU) once they are all Ready.
 *
 * The operator is the real CLI process; its RSS (VmRSS, peak VmHWM) and CPU time come from /proc.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { API_GROUP, API_VERSION, PLURAL } from '../../operator/src/api/constants.js';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { LABELS } from '../../operator/src/groups/labels.js';
import { NVLINK_DOMAIN_LABEL } from '../cluster/gpu-nodes.js';
import type { LocalCluster } from '../cluster/local-cluster.js';
import { auditEvents } from '../e2e/audit.js';
import type { E2eContext } from '../e2e/fixture.js';
import { createBd, customObjects, metricValue, testDeployment, type OperatorProcess } from '../e2e/operator-harness.js';
import {
  LoadSampler, benchCluster, breakdown, deleteDeployment, keepLogs, log, machine, operatorRevision, operatorWrites, podEpochOf,
  sec, sleep, startBenchOperator, versions, withCleanup, writeResults,
} from './common.js';

const args = yargs(hideBin(process.argv))
  .option('deployments', { type: 'number', default: 25, describe: 'deployments applied at once' })
  .option('groups', { type: 'number', default: 10, describe: 'groups (replicas) per deployment' })
  .option('tp', { type: 'number', default: 8, describe: 'tensor-parallel size (8: one 8-GPU pod per group; 16: two)' })
  .option('large', { type: 'number', default: 0, describe: 'groups of the large run (0 skips it), in deployments of --groups' })
  .option('idle-seconds', { type: 'number', default: 60 })
  .option('timeout-seconds', { type: 'number', default: 900 })
  .strict().parseSync();

const PODS_PER_GROUP = Math.max(1, args.tp / 8);
/** Exclusive; a multi-pod group inside one NVLink clique (2 nodes: exactly one group of 2 pods per clique). */
const PLACEMENT = PODS_PER_GROUP > 1 ? { exclusive: true, topologyKey: NVLINK_DOMAIN_LABEL } : { exclusive: true };
/** Each group shape, and a run with the large wave, keeps its own section of RESULTS.md. */
const SECTION = `bench:scale${PODS_PER_GROUP > 1 ? `:tp${args.tp}` : ''}${args.large > 0 ? ':large' : ''}`;
const CLK_TCK = 100; // Linux USER_HZ
/**
 * Nodes count as lost after 5 min without a lease renewal, not a kubelet's 40 s: the benchmark measures
 * the operator, and at 1000 simulated nodes on 2 cores kube-controller-manager's lease informer lags
 * more than 40 s behind during the burst (see UpOptions.nodeMonitorGraceSeconds).
 */
const NODE_MONITOR_GRACE_SECONDS = 300;

interface ProcSample { rssKb: number; hwmKb: number; cpuS: number }

function procSample(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
  const cpuS = (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14, 15)
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), cpuS };
}

/** Samples the operator's RSS every 500 ms; peakKb is the largest seen (VmHWM covers what falls between). */
class RssSampler {
  peakKb = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly pid: number) {}
  start(): this { this.timer = setInterval(() => { this.peakKb = Math.max(this.peakKb, procSample(this.pid).rssKb); }, 500); this.timer.unref(); return this; }
  stop(): void { clearInterval(this.timer); }
}

const mb = (kb: number) => (kb / 1024).toFixed(0);

const describeIdle = (idle: Idle) => `Idle, ${idle.groups} groups Ready and unchanged for ${args['idle-seconds']} s: **${idle.cpuPerMin.toFixed(3)} CPU s per minute** (${(idle.cpuPerMin / 60 * 100).toFixed(2)} % of a core), RSS ${mb(idle.rssKb)} MB, V8 heap in use ${idle.heapMb.toFixed(0)} MB; node writes the operator's node watch received meanwhile (kwok's node status heartbeats, every 5 min per node as a kubelet's): ${idle.nodeEvents} (${(idle.nodeEvents / (args['idle-seconds'] / 60)).toFixed(0)} per minute).`;

/** Writes to Node objects completed since `since` (ms), from every audit log of the cluster (rotated ones too). */
function nodeWrites(auditLog: string, since: number): number {
  return auditEvents(auditLog, '"nodes"')
    .filter((e) => e.stage === 'ResponseComplete' && e.objectRef?.resource === 'nodes' && Date.parse(e.stageTimestamp) >= since).length;
}

async function listBds(ctx: E2eContext): Promise<BloomDeployment[]> {
  const res = await customObjects(ctx.kc).listNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ctx.namespace, plural: PLURAL });
  return (res as { items: BloomDeployment[] }).items;
}

interface Wave { name: string; deployments: number; groups: number; readyMs: number; recreated: number; writes: number; byKind: string; rssPeakKb: number }

/** Applies `deployments` deployments of `groups` groups at once and waits until every one is Ready. */
async function wave(ctx: E2eContext, operator: OperatorProcess, name: string, deployments: number, groups: number): Promise<Wave> {
  const names = Array.from({ length: deployments }, (_, i) => `${name}-${i}`);
  const rss = new RssSampler(operator.process.pid).start();
  const t0 = Date.now();
  await Promise.all(names.map((n) => createBd(ctx, testDeployment(n, { replicas: groups, tensorParallelSize: args.tp, placement: PLACEMENT }))));
  let readyAt = NaN;
  const deadline = t0 + args['timeout-seconds'] * 1000;
  while (Date.now() < deadline) {
    const bds = (await listBds(ctx)).filter((b) => names.includes(b.metadata.name ?? ''));
    if (bds.length === deployments && bds.every((b) => (b.status?.readyReplicas ?? 0) === groups)) { readyAt = Date.now(); break; }
    await sleep(250);
  }
  await sleep(1000);
  rss.stop();
  if (!Number.isFinite(readyAt)) log(`${name}: not all Ready within ${args['timeout-seconds']} s`);
  const bds = (await listBds(ctx)).filter((b) => names.includes(b.metadata.name ?? ''));
  const restarted = bds.flatMap((b) => (b.status?.groups ?? []).filter((g) => g.restarts > 0)).length;
  const pods = (await ctx.core.listNamespacedPod({ namespace: ctx.namespace })).items;
  const highEpoch = new Set(pods.filter((p) => podEpochOf(p) > 1).map((p) => `${p.metadata?.labels?.[LABELS.deployment]}/${p.metadata?.labels?.[LABELS.group]}`)).size;
  const writes = operatorWrites(ctx, t0);
  return {
    name, deployments, groups, readyMs: readyAt - t0, recreated: Math.max(restarted, highEpoch), writes: writes.length,
    byKind: breakdown(writes).map((b) => `${b.count} ${b.key}`).join(', '), rssPeakKb: Math.max(rss.peakKb, procSample(operator.process.pid).rssKb),
  };
}

/**
 * Quiet time before an idle measurement: the last status writes and events, and V8's memory reducer,
 * which runs a few full GCs once allocation stops after a burst (tens of CPU seconds' worth of heap).
 */
const SETTLE_MS = 30_000;

/** The operator's CPU seconds per minute over --idle-seconds of nothing changing. */
async function idleCpuPerMinute(pid: number): Promise<number> {
  const before = procSample(pid);
  await sleep(args['idle-seconds'] * 1000);
  return (procSample(pid).cpuS - before.cpuS) / (args['idle-seconds'] / 60);
}

interface Idle { groups: number; cpuPerMin: number; rssKb: number; heapMb: number; nodeEvents: number }

/** After a settle: CPU per minute, RSS and heap with `groups` groups Ready and nothing changing. */
async function measureIdle(cluster: LocalCluster, operator: OperatorProcess, groups: number): Promise<Idle> {
  await sleep(SETTLE_MS);
  const t = Date.now();
  const cpuPerMin = await idleCpuPerMinute(operator.process.pid);
  const rssKb = procSample(operator.process.pid).rssKb;
  const heap = (await metricValue(operator, 'nodejs_heap_size_used_bytes')) ?? NaN;
  const idle = { groups, cpuPerMin, rssKb, heapMb: heap / 2 ** 20, nodeEvents: nodeWrites(cluster.auditLog, t) };
  log(`idle with ${groups} groups: ${cpuPerMin.toFixed(3)} CPU s per minute, RSS ${mb(rssKb)} MB`);
  return idle;
}

async function clear(ctx: E2eContext): Promise<void> {
  for (const b of await listBds(ctx)) await deleteDeployment(ctx, b.metadata.name ?? '');
}

async function main(): Promise<void> {
  const started = Date.now();
  const load = new LoadSampler().start();
  const fleetGroups = args.deployments * args.groups;
  const nodes = Math.max(fleetGroups, args.large) * PODS_PER_GROUP;
  log(`bench:scale: ${args.deployments} x ${args.groups} groups (TP=${args.tp}) at once on ${nodes} nodes; large run ${args.large || 'skipped'}`);
  const cluster = await benchCluster(nodes, { nodeMonitorGraceSeconds: NODE_MONITOR_GRACE_SECONDS });
  let operator: OperatorProcess | undefined;
  const waves: Wave[] = [];
  const idles: Idle[] = [];
  let startRssKb = NaN;
  let emptyCpuPerMin = NaN;
  let logs: string | undefined;

  await withCleanup(async () => {
    await operator?.stop();
    logs = keepLogs(cluster, 'scale');
    await cluster.down();
    load.stop();
  }, async () => {
    const started = await startBenchOperator(cluster, 'bench-scale');
    const ctx = started.ctx;
    operator = started.operator;
    await sleep(SETTLE_MS);
    startRssKb = procSample(operator.process.pid).rssKb;
    emptyCpuPerMin = await idleCpuPerMinute(operator.process.pid);

    waves.push(await wave(ctx, operator, 'baseline', 1, args.groups));
    await clear(ctx);
    waves.push(await wave(ctx, operator, 'fleet', args.deployments, args.groups));
    log(`fleet: Ready in ${sec(waves.at(-1)!.readyMs)} s, ${waves.at(-1)!.recreated} groups recreated`);

    idles.push(await measureIdle(cluster, operator, fleetGroups));

    if (args.large > 0) {
      await clear(ctx);
      const large = await wave(ctx, operator, 'large', Math.ceil(args.large / args.groups), args.groups);
      waves.push(large);
      if (Number.isFinite(large.readyMs)) idles.push(await measureIdle(cluster, operator, large.deployments * large.groups));
    }
  });

  const v = versions();
  const row = (w: Wave) => `| ${w.name} | ${w.deployments} x ${w.groups} | ${w.deployments * w.groups * PODS_PER_GROUP} | ${sec(w.readyMs)} | ${w.recreated} | ${(w.writes / (w.deployments * w.groups)).toFixed(2)} | ${mb(w.rssPeakKb)} |`;
  const md = `## Scale: many deployments at once${PODS_PER_GROUP > 1 ? `, multi-pod groups (TP=${args.tp})` : ''}${args.large > 0 ? `, with a large wave of ${args.large} groups` : ''} (\`npm run bench:scale\`)

| | |
|---|---|
| command | \`npm run bench:scale -- --deployments ${args.deployments} --groups ${args.groups} --tp ${args.tp} --large ${args.large} --idle-seconds ${args['idle-seconds']}\` |
| date | ${new Date().toISOString()} |
| versions | Kubernetes ${v.KUBERNETES_VERSION}, etcd ${v.ETCD_VERSION}, kwok ${v.KWOK_VERSION}; operator ${operatorRevision()}, real CLI process, 4 workers |
| machine | ${hostname()}: ${machine()} |
| concurrent load | ${load.describe()} |
| cluster | ${nodes} kwok nodes x 8 GPUs (an exact fit for the fleet: placement.exclusive, ${PODS_PER_GROUP} pod(s) of 8 GPUs per group); node-monitor-grace-period ${NODE_MONITOR_GRACE_SECONDS} s |
| wall time | ${((Date.now() - started) / 1000).toFixed(0)} s |

| run | deployments x groups | rank pods | all Ready (s) | groups recreated | operator writes per group | operator RSS peak (MB) |
|---|---|---:|---:|---:|---:|---:|
${waves.map(row).join('\n')}

Operator RSS after start (nothing cached but the CRD's objects): ${mb(startRssKb)} MB; idle with nothing deployed: ${emptyCpuPerMin.toFixed(3)} CPU s per minute. ${idles.map(describeIdle).join(' ')}

Writes by kind: ${waves.map((w) => `${w.name}: ${w.byKind}`).join('; ')}.${logs ? ` Logs: ${logs.replace(/^.*\/\.cluster\//, '.cluster/')} (not committed).` : ''}
`;
  console.log('\n' + md);
  log(`wrote ${writeResults(SECTION, md)}`);
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error('bench:scale failed:', err);
  process.exit(1);
});
