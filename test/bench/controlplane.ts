/**
 * `npm run bench:controlplane`: how fast the real operator brings BloomDeployments up on a local
 * control plane with 50 fake 8-GPU nodes (kwok), and how many API writes it makes per group.
 *
 *   1. 1 group (TP=8), N times (a fresh deployment each time): creation -> every pod
 *      Running+Ready (pod watch) and -> status.readyReplicas=1 (deployment watch).
 *   2. 50 groups (400 pods on 50 nodes), a few times (deleted in between).
 *   3. API writes by the operator per group, from the audit log, by resource and verb.
 *   4. Zero writes: 10 s of an unchanged ready deployment after a forced resync (an operator
 *      restart: full re-list and reconcile of everything) and after a metadata-only touch.
 *   5. The gang policies (SchedulingGates, Kueue, PodGroup) on multi-pod groups (gang.ts).
 *
 * Environment: BENCH_SINGLE_RUNS (10), BENCH_FLEET_RUNS (3), BENCH_FLEET_GROUPS (50), BENCH_NODES (50),
 * BENCH_GANG_RUNS (3; 0 skips the gang policies).
 */
import { hostname } from 'node:os';
import type { V1Pod } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, PLURAL } from '../../operator/src/api/constants.js';
import type { AuditEvent } from '../e2e/audit.js';
import type { E2eContext } from '../e2e/fixture.js';
import { readyGroupCount } from '../e2e/observe.js';
import { createBd, customObjects, getBd, startOperator, testDeployment, type OperatorProcess } from '../e2e/operator-harness.js';
import { benchGangPolicies } from './gang.js';
import {
  LoadSampler, auditTimeline, bdReached, benchCluster, breakdown, deleteDeployment, keepLogs, log, machine, median, mergePatch, mmm, operatorRevision, startBenchOperator,
  OPERATOR_USER, operatorWrites, podsReached, sec, sleep, versions, withCleanup, writeResults,
} from './common.js';

const SINGLE_RUNS = Number(process.env.BENCH_SINGLE_RUNS ?? 10);
const FLEET_RUNS = Number(process.env.BENCH_FLEET_RUNS ?? 3);
const FLEET_GROUPS = Number(process.env.BENCH_FLEET_GROUPS ?? 50);
const NODES = Number(process.env.BENCH_NODES ?? 50);
const TP = 8;
/** TP=8 is one 8-GPU pod per group (gpusPerPod defaults to min(TP, 8)). */
const PODS_PER_GROUP = 1;
const QUIET_MS = 10_000;
/** One extra fleet run with the default placement (exclusive=false), bounded by this timeout; 0 skips it. */
const DEFAULT_PLACEMENT_TIMEOUT_S = Number(process.env.BENCH_DEFAULT_PLACEMENT_TIMEOUT_S ?? 150);
const GANG_RUNS = Number(process.env.BENCH_GANG_RUNS ?? 3);

interface Run { name: string; groups: number; podsReadyMs: number; statusReadyMs: number; writes: AuditEvent[]; restarts: string[]; timeline: string }

/** Timing runs use exclusive placement (see the note in the results: the default placement can stall). */
const EXCLUSIVE = { placement: { exclusive: true } };

/** Creates the deployment and times it to all rank pods ready and to status.readyReplicas. */
async function timeCreation(ctx: E2eContext, name: string, groups: number, timeoutMs: number, spec: Record<string, unknown> = EXCLUSIVE): Promise<Run> {
  const pods = podsReached(ctx, name, (p: V1Pod[]) => readyGroupCount(p, PODS_PER_GROUP) === groups && p.filter((x) => !x.metadata?.deletionTimestamp).length === groups * PODS_PER_GROUP, timeoutMs);
  await sleep(300); // let the pod watch list and start watching
  const t0 = Date.now();
  const status = bdReached(ctx, name, (b) => b.status?.readyReplicas === groups, timeoutMs);
  try {
    await createBd(ctx, testDeployment(name, { replicas: groups, tensorParallelSize: TP, ...spec }));
    const [podsAt, { at: statusAt, bd }] = await Promise.all([pods.reached, status]);
    await sleep(1000); // writes of the last reconciles (events, no-op status) land in the window
    const writes = operatorWrites(ctx, t0);
    const restarts = (bd.status?.groups ?? []).filter((g) => g.restarts > 0).map((g) => `g${g.index}: ${g.restarts}x ${g.lastFailure?.reason ?? '?'}`);
    const timeline = auditTimeline(ctx, t0, Math.max(podsAt, statusAt));
    return { name, groups, podsReadyMs: podsAt - t0, statusReadyMs: statusAt - t0, writes, restarts, timeline };
  } finally {
    pods.stop();
  }
}

function writesTable(runs: readonly Run[]): string {
  const groups = runs.reduce((n, r) => n + r.groups, 0);
  const all = runs.flatMap((r) => r.writes);
  const rows = breakdown(all).map((b) => `| ${b.key} | ${b.count} | ${(b.count / groups).toFixed(2)} | ${b.failed} |`);
  const failed = all.filter((e) => (e.responseStatus?.code ?? 200) >= 400).length;
  return ['| verb resource | writes | per group | of which failed (HTTP ≥ 400) |', '|---|---:|---:|---:|', ...rows,
    `| **total** | **${all.length}** | **${(all.length / groups).toFixed(2)}** | ${failed} |`].join('\n');
}

async function main(): Promise<void> {
  const started = Date.now();
  const load = new LoadSampler().start();
  const v = versions();
  log(`bench:controlplane: ${SINGLE_RUNS} x 1 group, ${FLEET_RUNS} x ${FLEET_GROUPS} groups, TP=${TP}, ${NODES} nodes`);
  const cluster = await benchCluster(NODES);
  let operator: OperatorProcess | undefined;
  const single: Run[] = [];
  const fleet: Run[] = [];
  const quiet: Array<{ what: string; writes: AuditEvent[] }> = [];
  let restartReadyMs = NaN;
  let defaultPlacement = 'not run';
  let gang = '';
  let logs: string | undefined;

  await withCleanup(async () => {
    await operator?.stop();
    logs = keepLogs(cluster, 'controlplane');
    await cluster.down();
    load.stop();
  }, async () => {
    const { ctx, operator: first } = await startBenchOperator(cluster, 'bench-cp');
    operator = first;

    for (let i = 1; i <= SINGLE_RUNS; i++) {
      const r = await timeCreation(ctx, `single-${i}`, 1, 120_000);
      single.push(r);
      log(`1 group #${i}: pods ready ${sec(r.podsReadyMs)} s, status.readyReplicas=1 ${sec(r.statusReadyMs)} s, ${r.writes.length} operator writes`);
    }
    for (const r of single) await deleteDeployment(ctx, r.name);

    for (let i = 1; i <= FLEET_RUNS; i++) {
      const r = await timeCreation(ctx, `fleet-${i}`, FLEET_GROUPS, 600_000);
      fleet.push(r);
      if (r.restarts.length) log(`  group restarts during creation: ${r.restarts.join(', ')}`);
      log(`${FLEET_GROUPS} groups #${i}: pods ready ${sec(r.podsReadyMs)} s, status.readyReplicas=${FLEET_GROUPS} ${sec(r.statusReadyMs)} s, ${r.writes.length} operator writes`);
      if (i < FLEET_RUNS) await deleteDeployment(ctx, r.name);
    }

    // Zero-write property on the last (ready, unchanged) fleet deployment.
    const bd = fleet.at(-1)!.name;
    await sleep(2000);
    await operator.stop();
    const tRestart = Date.now();
    operator = await startOperator(cluster, { extraArgs: ['--namespace', ctx.namespace], name: 'operator-restarted' });
    restartReadyMs = Date.now() - tRestart;
    await sleep(QUIET_MS);
    quiet.push({ what: `operator restarted (initial list + reconcile of every deployment), then ${QUIET_MS / 1000} s`, writes: operatorWrites(ctx, tRestart) });
    const tTouch = Date.now();
    await customObjects(ctx.kc).patchNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ctx.namespace, plural: PLURAL, name: bd,
      body: { metadata: { annotations: { 'bench.bloom.dev/touched': String(tTouch) } } } }, mergePatch);
    await sleep(QUIET_MS);
    quiet.push({ what: `metadata-only change of the deployment (an annotation; a watch event and a reconcile), then ${QUIET_MS / 1000} s`, writes: operatorWrites(ctx, tTouch) });
    await deleteDeployment(ctx, bd);

    if (DEFAULT_PLACEMENT_TIMEOUT_S > 0) {
      const name = 'fleet-default-placement';
      const t0 = Date.now();
      try {
        const r = await timeCreation(ctx, name, FLEET_GROUPS, DEFAULT_PLACEMENT_TIMEOUT_S * 1000, {});
        defaultPlacement = `Ready: pods ${sec(r.podsReadyMs)} s, status ${sec(r.statusReadyMs)} s; ${r.writes.length / r.groups} writes per group; restarted groups: ${r.restarts.join(', ') || 'none'}`;
      } catch (err) {
        const b = await getBd(ctx, name);
        const groups = b.status?.groups ?? [];
        const count = (xs: string[]) => Object.entries(xs.reduce<Record<string, number>>((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {})).map(([k, n]) => `${n} ${k}`).join(', ');
        const restarted = groups.filter((g) => g.restarts > 0);
        defaultPlacement = `**not Ready within ${DEFAULT_PLACEMENT_TIMEOUT_S} s**: readyReplicas=${b.status?.readyReplicas ?? 0}/${FLEET_GROUPS}; group phases: ${count(groups.map((g) => g.phase))}; `
          + `${restarted.length} groups restarted (${count(restarted.map((g) => `${g.lastFailure?.reason ?? '?'} x${g.restarts}`))}), a stall costs placementTimeoutSeconds (60) + backoffSeconds (10, doubling); `
          + `${operatorWrites(ctx, t0).length} operator writes (${(err as Error).message.split(':')[0]})`;
      }
      log(`default placement, ${FLEET_GROUPS} groups: ${defaultPlacement}`);
    }
    if (DEFAULT_PLACEMENT_TIMEOUT_S > 0) await deleteDeployment(ctx, 'fleet-default-placement');
    if (GANG_RUNS > 0) gang = await benchGangPolicies(cluster, ctx, NODES, GANG_RUNS, FLEET_GROUPS);
    for (const q of quiet) log(`zero-write check: ${q.writes.length} writes: ${q.what} ${q.writes.map((w) => `${w.verb} ${w.objectRef?.resource}/${w.objectRef?.name}`).join(', ')}`);
  });

  const wall = (Date.now() - started) / 1000;
  const perRunWrites = (runs: readonly Run[]) => runs.map((r) => r.writes.length / r.groups);
  const md = `## Control plane: time to Ready and API writes (\`npm run bench:controlplane\`)

| | |
|---|---|
| command | \`npm run bench:controlplane\` (= \`bash hack/setup.sh --tools && node dist/test/bench/controlplane.js\`) |
| date | ${new Date().toISOString()} |
| versions | Kubernetes ${v.KUBERNETES_VERSION}, etcd ${v.ETCD_VERSION}, kwok ${v.KWOK_VERSION}, Kueue ${v.KUEUE_VERSION} (hack/versions.env); operator ${operatorRevision()}, real CLI process (dist/), 4 workers |
| machine | ${hostname()}: ${machine()} |
| concurrent load | ${load.describe()} |
| cluster | LocalCluster .cluster/bench: ${NODES} kwok nodes x 8 GPUs, audit log of writes; TP=${TP} as one 8-GPU pod per group |
| wall time | ${wall.toFixed(0)} s (cluster start included) |

Time from the create request to every pod of the groups Running+Ready (pod watch) and to \`status.readyReplicas\` = groups (deployment watch); median (min–max), seconds.

| scenario | runs | pods Running+Ready | status.readyReplicas | operator writes per group |
|---|---:|---:|---:|---:|
| 1 group (${PODS_PER_GROUP} pod of ${TP} GPUs) | ${single.length} | ${mmm(single.map((r) => r.podsReadyMs))} | ${mmm(single.map((r) => r.statusReadyMs))} | ${median(perRunWrites(single)).toFixed(1)} (${Math.min(...perRunWrites(single)).toFixed(1)}–${Math.max(...perRunWrites(single)).toFixed(1)}) |
| ${FLEET_GROUPS} groups (${FLEET_GROUPS * PODS_PER_GROUP} pods of ${TP} GPUs on ${NODES} nodes) | ${fleet.length} | ${mmm(fleet.map((r) => r.podsReadyMs))} | ${mmm(fleet.map((r) => r.statusReadyMs))} | ${median(perRunWrites(fleet)).toFixed(1)} (${Math.min(...perRunWrites(fleet)).toFixed(1)}–${Math.max(...perRunWrites(fleet)).toFixed(1)}) |

Per-run values (s, pods / status): 1 group: ${single.map((r) => `${sec(r.podsReadyMs)}/${sec(r.statusReadyMs)}`).join(', ')}; ${FLEET_GROUPS} groups: ${fleet.map((r) => `${sec(r.podsReadyMs)}/${sec(r.statusReadyMs)}`).join(', ')}.

API writes by the operator (audit log, user \`${OPERATOR_USER}\`, namespace of the benchmark, from the create request to 1 s after Ready), per group created:

1 group deployments (${single.length} runs):

${writesTable(single)}

${FLEET_GROUPS}-group deployments (${fleet.length} runs):

${writesTable(fleet)}

Where the time of the last ${FLEET_GROUPS}-group creation went: every write in the namespace from the create request to Ready, by component (audit log; s after the create request):

${fleet.at(-1)?.timeline ?? ''}

Zero-write property on the ready, unchanged ${FLEET_GROUPS}-group deployment (${FLEET_GROUPS * PODS_PER_GROUP} pods):

| forced resync | operator writes |
|---|---:|
${quiet.map((q) => `| ${q.what} | ${q.writes.length}${q.writes.length ? ` (${breakdown(q.writes).map((b) => `${b.count} ${b.key}`).join(', ')})` : ''} |`).join('\n')}

Default placement (\`placement.exclusive: false\`, the CRD default) — one ${FLEET_GROUPS}-group creation, bounded by ${DEFAULT_PLACEMENT_TIMEOUT_S} s: ${defaultPlacement}.
The timing rows above use \`placement.exclusive: true\` (required anti-affinity between groups); group restarts during those creations: ${[...single, ...fleet].flatMap((r) => r.restarts.map((x) => `${r.name} ${x}`)).join(', ') || 'none'}.

The restarted operator was ready (caches synced) ${sec(restartReadyMs)} s after it was started.${logs ? ` Logs of the run: ${logs.replace(/^.*\/\.cluster\//, '.cluster/')} (not committed).` : ''}

${gang}`;
  console.log('\n' + md);
  const file = writeResults('bench:controlplane', md);
  log(`wrote ${file}`);
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error('bench:controlplane failed:', err);
  process.exit(1);
});
