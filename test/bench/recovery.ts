/**
 * `npm run bench:recovery`: how fast the real operator recovers a tensor-parallel group from a
 * rank failure, and how long a rolling update of 10 groups takes, on a local control plane (kwok).
 *
 *   1. Recovery: a ready 1-group TP=8 deployment with failurePolicy.backoffSeconds=0; N times in
 *      sequence, the group's pod gets the kwok failure label (container exits 1, pod Failed);
 *      measured from the label patch to the group Ready again with a higher epoch: every rank pod
 *      of the new epoch Running+Ready (pod watch) and status (group phase Ready, readyReplicas=1).
 *      Phases: detection (status shows the new epoch), old epoch gone, new epoch ready.
 *   2. The same with the default failurePolicy (backoffSeconds=10, doubling per restart in the window), a few times.
 *   3. Rolling update of replicas=10, TP=8 (worker image change) for maxSurge=1/maxUnavailable=0 and
 *      maxSurge=2/maxUnavailable=1: from the patch to updatedReplicas=readyReplicas=10 with
 *      currentRevision==updateRevision; the fewest ready groups seen by a pod watch meanwhile.
 *
 * Environment: BENCH_FAILURES (40), BENCH_DEFAULT_FAILURES (2), BENCH_ROLLOUTS (3), BENCH_NODES (16).
 */
import { hostname } from 'node:os';
import type { V1Pod } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, PLURAL } from '../../operator/src/api/constants.js';
import { DEFAULTS } from '../../operator/src/api/defaults-table.js';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import type { AuditEvent } from '../e2e/audit.js';
import type { E2eContext } from '../e2e/fixture.js';
import { readyGroupCount } from '../e2e/observe.js';
import { createBd, customObjects, getBd, podsOf, testDeployment, type OperatorProcess } from '../e2e/operator-harness.js';
import {
  LoadSampler, bdReached, benchCluster, breakdown, deleteDeployment, isPodReady, keepLogs, log, machine, median, mergePatch, operatorRevision, startBenchOperator,
  operatorWrites, podEpochOf, podsReached, quantile, sec, sleep, versions, withCleanup, writeResults,
} from './common.js';

const FAILURES = Number(process.env.BENCH_FAILURES ?? 40);
const DEFAULT_FAILURES = Number(process.env.BENCH_DEFAULT_FAILURES ?? 2);
const ROLLOUTS = Number(process.env.BENCH_ROLLOUTS ?? 3);
const NODES = Number(process.env.BENCH_NODES ?? 16);
const TP = 8;
/** TP=8 is one 8-GPU pod per group (gpusPerPod defaults to min(TP, 8)). */
const PODS_PER_GROUP = 1;
const GROUPS = 10;
const FAILED_LABEL = 'pod-container-running-failed.stage.kwok.x-k8s.io';
const FAST_POLICY = { backoffSeconds: 0, maxBackoffSeconds: 5, maxGroupRestarts: 1000 };

interface Recovery { detectMs: number; oldGoneMs: number; podsReadyMs: number; statusReadyMs: number; pod: number; reason: string }

const group0 = (b: BloomDeployment) => b.status?.groups?.find((g) => g.index === 0);

/** Fails one random rank of the (ready) group 0 and times its recovery into a higher epoch. */
async function injectAndTime(ctx: E2eContext, name: string, timeoutMs: number): Promise<Recovery> {
  const before = await getBd(ctx, name);
  const epoch = group0(before)!.epoch;
  const live = (await podsOf(ctx, name)).filter((p) => podEpochOf(p) === epoch && isPodReady(p));
  if (live.length !== PODS_PER_GROUP) throw new Error(`expected ${PODS_PER_GROUP} ready pod(s) of epoch ${epoch}, found ${live.length}`);
  const victim = live[Math.floor(Math.random() * live.length)]!;
  let detectAt = NaN;
  let oldGoneAt = NaN;
  const pods = podsReached(ctx, name, (ps: V1Pod[]) => {
    const next = ps.filter((p) => podEpochOf(p) > epoch);
    return next.length === PODS_PER_GROUP && next.every(isPodReady) && readyGroupCount(next, PODS_PER_GROUP) === 1;
  }, timeoutMs, (ps, at) => {
    if (Number.isNaN(oldGoneAt) && !ps.some((p) => podEpochOf(p) <= epoch)) oldGoneAt = at;
  });
  await sleep(300); // the pod watch lists and starts watching
  const t0 = Date.now();
  const status = bdReached(ctx, name, (b) => {
    const g = group0(b);
    return !!g && g.epoch > epoch && g.phase === 'Ready' && b.status?.readyReplicas === 1;
  }, timeoutMs, (b, at) => { if (Number.isNaN(detectAt) && (group0(b)?.epoch ?? 0) > epoch) detectAt = at; });
  try {
    await ctx.core.patchNamespacedPod({ name: victim.metadata!.name!, namespace: ctx.namespace, body: { metadata: { labels: { [FAILED_LABEL]: 'true' } } } }, mergePatch);
    const [podsAt, { at: statusAt, bd }] = await Promise.all([pods.reached, status]);
    return {
      detectMs: detectAt - t0, oldGoneMs: oldGoneAt - t0, podsReadyMs: podsAt - t0, statusReadyMs: statusAt - t0,
      pod: Number(victim.metadata?.labels?.['inference.bloom.dev/pod']), reason: group0(bd)?.lastFailure?.reason ?? '?',
    };
  } finally {
    pods.stop();
  }
}

const rolledOut = (replicas: number) => (b: BloomDeployment) =>
  b.status?.updatedReplicas === replicas && b.status.readyReplicas === replicas && b.status.replicas === replicas
  && b.status.currentRevision === b.status.updateRevision && (b.status.groups ?? []).length === replicas;

interface Rollout { surge: number; unavailable: number; ms: number; minReady: number; writes: number; events: AuditEvent[] }

async function timeRollout(ctx: E2eContext, name: string, image: string, surge: number, unavailable: number): Promise<Rollout> {
  const before = await getBd(ctx, name);
  let minReady = Infinity;
  const pods = podsReached(ctx, name, () => false, 600_000, (ps) => { minReady = Math.min(minReady, readyGroupCount(ps, PODS_PER_GROUP)); });
  await sleep(300);
  const t0 = Date.now();
  const done = bdReached(ctx, name, (b) => rolledOut(GROUPS)(b) && b.status?.updateRevision !== before.status?.updateRevision, 300_000);
  try {
    await customObjects(ctx.kc).patchNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ctx.namespace, plural: PLURAL, name,
      body: { spec: { worker: { image } } } }, mergePatch);
    const { at } = await done;
    const events = operatorWrites(ctx, t0, at);
    return { surge, unavailable, ms: at - t0, minReady, writes: events.length, events };
  } finally {
    pods.stop();
  }
}

const stats = (xs: readonly number[]) => `${sec(median(xs))} | ${sec(quantile(xs, 0.95))} | ${sec(Math.min(...xs))} | ${sec(Math.max(...xs))}`;

async function main(): Promise<void> {
  const started = Date.now();
  const load = new LoadSampler().start();
  const v = versions();
  log(`bench:recovery: ${FAILURES} failures (backoff 0), ${DEFAULT_FAILURES} with the default policy, ${ROLLOUTS} rollouts per setting of ${GROUPS} groups, TP=${TP}, ${NODES} nodes`);
  const cluster = await benchCluster(NODES);
  let operator: OperatorProcess | undefined;
  const fast: Recovery[] = [];
  const slow: Recovery[] = [];
  const rollouts: Rollout[] = [];
  let fastWrites: AuditEvent[] = [];
  let logs: string | undefined;

  await withCleanup(async () => {
    await operator?.stop();
    logs = keepLogs(cluster, 'recovery');
    await cluster.down();
    load.stop();
  }, async () => {
    const { ctx, operator: first } = await startBenchOperator(cluster, 'bench-recovery');
    operator = first;

    // 1. the control loop: backoffSeconds 0
    await createBd(ctx, testDeployment('recover', { replicas: 1, tensorParallelSize: TP, failurePolicy: FAST_POLICY }));
    await bdReached(ctx, 'recover', (b) => group0(b)?.phase === 'Ready', 120_000);
    const tFast = Date.now();
    for (let i = 1; i <= FAILURES; i++) {
      const r = await injectAndTime(ctx, 'recover', 120_000);
      fast.push(r);
      log(`failure ${i}/${FAILURES} (pod ${r.pod}, ${r.reason}): detected ${sec(r.detectMs)} s, old epoch gone ${sec(r.oldGoneMs)} s, pods ready ${sec(r.podsReadyMs)} s, status Ready ${sec(r.statusReadyMs)} s`);
      await sleep(200);
    }
    fastWrites = operatorWrites(ctx, tFast);
    await deleteDeployment(ctx, 'recover');

    // 2. the default failure policy (back-off)
    if (DEFAULT_FAILURES > 0) {
      await createBd(ctx, testDeployment('recover-default', { replicas: 1, tensorParallelSize: TP }));
      await bdReached(ctx, 'recover-default', (b) => group0(b)?.phase === 'Ready', 120_000);
      for (let i = 1; i <= DEFAULT_FAILURES; i++) {
        const r = await injectAndTime(ctx, 'recover-default', 600_000);
        slow.push(r);
        log(`default policy failure ${i}/${DEFAULT_FAILURES}: pods ready ${sec(r.podsReadyMs)} s, status Ready ${sec(r.statusReadyMs)} s`);
      }
      await deleteDeployment(ctx, 'recover-default');
    }

    // 3. rolling updates of 10 groups
    for (const [surge, unavailable] of [[1, 0], [2, 1]] as const) {
      const name = `roll-s${surge}-u${unavailable}`;
      await createBd(ctx, testDeployment(name, { replicas: GROUPS, tensorParallelSize: TP, placement: { exclusive: true }, rollout: { maxSurge: surge, maxUnavailable: unavailable } }));
      await bdReached(ctx, name, rolledOut(GROUPS), 300_000);
      for (let i = 1; i <= ROLLOUTS; i++) {
        const r = await timeRollout(ctx, name, `ghcr.io/bloom-operator/worker:bench-${i}`, surge, unavailable);
        rollouts.push(r);
        log(`rollout maxSurge=${surge} maxUnavailable=${unavailable} #${i}: ${sec(r.ms)} s, fewest ready groups seen ${r.minReady}, ${r.writes} operator writes`);
        await sleep(500);
      }
      await deleteDeployment(ctx, name);
    }
  });

  const wall = (Date.now() - started) / 1000;
  const backoff = DEFAULTS.failurePolicy.backoffSeconds;
  const col = (k: keyof Recovery) => fast.map((r) => r[k] as number);
  const reasons = [...new Set(fast.map((r) => r.reason))].join(', ');
  const md = `## Recovery and rolling updates (\`npm run bench:recovery\`)

| | |
|---|---|
| command | \`npm run bench:recovery\` (= \`bash hack/setup.sh --tools && node dist/test/bench/recovery.js\`) |
| date | ${new Date().toISOString()} |
| versions | Kubernetes ${v.KUBERNETES_VERSION}, etcd ${v.ETCD_VERSION}, kwok ${v.KWOK_VERSION} (hack/versions.env); operator ${operatorRevision()}, real CLI process (dist/), 4 workers |
| machine | ${hostname()}: ${machine()} |
| concurrent load | ${load.describe()} |
| cluster | LocalCluster .cluster/bench: ${NODES} kwok nodes x 8 GPUs, audit log of writes; TP=${TP} |
| wall time | ${wall.toFixed(0)} s (cluster start included) |

Recovery from an injected rank failure (\`${FAILED_LABEL}=true\` on the pod (8 GPUs, 8 ranks) of a ready 1-group TP=${TP} deployment; the container exits 1 and the pod turns Failed), ${fast.length} failures in sequence, \`failurePolicy.backoffSeconds: 0\` (the control loop alone). Seconds from the label patch; failure reason(s) reported: ${reasons}.

| step (from the injection) | median | p95 | min | max |
|---|---:|---:|---:|---:|
| detected: status shows the new epoch | ${stats(col('detectMs'))} |
| every pod of the old epoch gone | ${stats(col('oldGoneMs'))} |
| every pod of the new epoch Running+Ready | ${stats(col('podsReadyMs'))} |
| **group Ready again** (status: phase Ready, higher epoch, readyReplicas=1) | ${stats(col('statusReadyMs'))} |

Operator writes per recovery: ${(fastWrites.length / Math.max(1, fast.length)).toFixed(1)} (${breakdown(fastWrites).map((b) => `${(b.count / Math.max(1, fast.length)).toFixed(1)} ${b.key}${b.failed ? ` [${b.failed} failed in all]` : ''}`).join(', ')}).

With the default failure policy (\`backoffSeconds: ${backoff}\`, doubled per restart within \`restartWindowSeconds\`, capped at \`maxBackoffSeconds: ${DEFAULTS.failurePolicy.maxBackoffSeconds}\`), the first failure of a group recovers in about backoffSeconds + the control loop = ${backoff} + ${sec(median(col('statusReadyMs')))} ≈ ${sec(backoff * 1000 + median(col('statusReadyMs')))} s (median).
Measured on a fresh deployment with the default policy, successive failures: ${slow.map((r, i) => `#${i + 1} (back-off ${Math.min(backoff * 2 ** i, DEFAULTS.failurePolicy.maxBackoffSeconds)} s): status Ready after ${sec(r.statusReadyMs)} s`).join('; ') || 'not run'}.

Rolling update of replicas=${GROUPS}, TP=${TP} (\`placement.exclusive: true\`), worker image changed by a merge patch: seconds from the patch to updatedReplicas=readyReplicas=${GROUPS} with currentRevision==updateRevision; the fewest fully ready groups any pod-watch event showed meanwhile.

| maxSurge / maxUnavailable | runs | median | min | max | fewest ready groups seen | operator writes per rollout (median) |
|---|---:|---:|---:|---:|---:|---:|
${[[1, 0], [2, 1]].map(([s, u]) => {
    const rs = rollouts.filter((r) => r.surge === s && r.unavailable === u);
    return rs.length ? `| ${s} / ${u} | ${rs.length} | ${sec(median(rs.map((r) => r.ms)))} | ${sec(Math.min(...rs.map((r) => r.ms)))} | ${sec(Math.max(...rs.map((r) => r.ms)))} | ${Math.min(...rs.map((r) => r.minReady))} | ${median(rs.map((r) => r.writes))} |` : `| ${s} / ${u} | 0 | | | | | |`;
  }).join('\n')}

Operator writes per rollout by kind (mean over all rollouts, both settings): ${breakdown(rollouts.flatMap((r) => r.events)).map((b) => `${(b.count / Math.max(1, rollouts.length)).toFixed(1)} ${b.key}${b.failed ? ` [${b.failed} failed in all]` : ''}`).join(', ')}.

Per-run rollout times (s): ${rollouts.map((r) => `${r.surge}/${r.unavailable}: ${sec(r.ms)}`).join(', ')}.${logs ? ` Logs of the run: ${logs.replace(/^.*\/\.cluster\//, '.cluster/')} (not committed).` : ''}
`;
  console.log('\n' + md);
  const file = writeResults('bench:recovery', md);
  log(`wrote ${file}`);
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error('bench:recovery failed:', err);
  process.exit(1);
});
