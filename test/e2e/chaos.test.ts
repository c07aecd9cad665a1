import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { LABELS } from '../../operator/src/groups/labels.js';
import { waitFor } from '../cluster/processes.js';
import { join } from 'node:path';
import { startFaultProxyFor, type FaultProxy } from '../faultproxy/index.js';
import { useE2e } from './fixture.js';
import { createBd, kubectl, podsOf, testDeployment, useOperator, waitForBd } from './operator-harness.js';
import { epochsByGroup, watchInvariant } from './observe.js';

const GROUPS = 20;
const TP = 2;
const CHAOS_MS = Number(process.env.BLOOM_CHAOS_MS ?? 40_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A seeded PRNG (mulberry32) so a failing run can be replayed with BLOOM_CHAOS_SEED. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The chaos scenario, run once with the operator talking to the API server directly and once behind the fault proxy. */
function chaos(title: string, prefix: string, behindProxy: boolean): void {
  describe(title, function () {
    const ctx = useE2e(prefix);
    let proxy: FaultProxy | undefined;
    const operator = useOperator(ctx, behindProxy ? { kubeconfig: async () => {
      proxy = await startFaultProxyFor(ctx.cluster, 'operator');
      for (const verb of ['list', 'watch'] as const) proxy.addRule({ match: { verb }, action: { kind: 'random', probability: 0.2, action: { kind: 'status', code: 503 } } });
      proxy.addRule({ match: { verb: 'watch' }, action: { kind: 'random', probability: 0.3, action: { kind: 'cutWatch', afterMs: 2_000 } } });
      return proxy.kubeconfig(join(ctx.cluster.logDir, `${ctx.namespace}.kubeconfig`));
    } } : {});
    after(async () => proxy?.close());
    const seed = Number(process.env.BLOOM_CHAOS_SEED ?? Date.now() % 100000);


    it(`keeps one epoch per group, converges, and leaves no orphans or duplicates (seed ${seed})`, async () => {
      await createBd(ctx, testDeployment('swarm', {
        replicas: GROUPS, tensorParallelSize: TP,
        failurePolicy: { backoffSeconds: 0, maxBackoffSeconds: 2, readinessLossSeconds: 2, placementTimeoutSeconds: 3, maxGroupRestarts: 1000 },
      }));
      await waitForBd(ctx, 'swarm', `${GROUPS} ready groups`, (b) => b.status?.readyReplicas === GROUPS, 180_000);
      const random = rng(seed);
      const faults: Array<(pod: V1Pod) => Promise<unknown>> = [
        (pod) => kubectl(ctx.cluster, '-n', ctx.namespace, 'label', '--overwrite', 'pod', pod.metadata!.name!, 'pod-container-running-failed.stage.kwok.x-k8s.io=true'),
        (pod) => kubectl(ctx.cluster, '-n', ctx.namespace, 'label', '--overwrite', 'pod', pod.metadata!.name!, 'pod-container-restarted.stage.kwok.x-k8s.io=true'),
        (pod) => kubectl(ctx.cluster, '-n', ctx.namespace, 'label', '--overwrite', 'pod', pod.metadata!.name!, 'pod-not-ready.stage.kwok.x-k8s.io=true'),
        (pod) => ctx.core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace: ctx.namespace }),
      ];
      let injected = 0;
      const chaos = (async () => {
        const end = Date.now() + CHAOS_MS;
        let operatorKilled = false;
        let apiserverRestarted = false;
        while (Date.now() < end) {
          const elapsed = 1 - (end - Date.now()) / CHAOS_MS;
          if (!operatorKilled && elapsed > 0.3) {
            operatorKilled = true;
            await operator.restart(2000);
          }
          if (!apiserverRestarted && elapsed > 0.6) {
            apiserverRestarted = true;
            await ctx.cluster.restart('kube-apiserver');
          }
          try {
            const live = (await podsOf(ctx, 'swarm')).filter((p) => !p.metadata?.deletionTimestamp && p.status?.phase === 'Running');
            if (live.length > 0) {
              await faults[Math.floor(random() * faults.length)]!(live[Math.floor(random() * live.length)]!);
              injected++;
            }
          } catch { /* the pod may be gone already, or the API server restarting */ }
          await sleep(150 + random() * 300);
        }
      })();
      const { samples, violations } = await watchInvariant(ctx, 'swarm', (pods) => {
        const mixed = [...epochsByGroup(pods)].filter(([, e]) => e.size > 1);
        return mixed.length ? `groups with two epochs alive: ${mixed.map(([g, e]) => `${g}:{${[...e]}}`).join(' ')}` : undefined;
      }, chaos);
      await chaos;
      assert.ok(injected >= 20, `injected ${injected} faults`);
      assert.ok(samples > 20, `observed ${samples} moments`);
      assert.deepEqual(violations, [], 'never two epochs of one group at once');

      const converged = await waitForBd(ctx, 'swarm', 'all groups ready again after the chaos', (b) =>
        b.status?.readyReplicas === GROUPS && b.status.replicas === GROUPS && (b.status.groups ?? []).every((g) => g.phase === 'Ready'), 180_000);
      const restarts = (converged.status?.groups ?? []).reduce((n, g) => n + g.restarts, 0);
      assert.ok(restarts > 0, 'the chaos did cause group restarts');

      // The status may be a moment behind the last fault; the pods and Services must agree with it soon after.
      let pods: V1Pod[] = [];
      let serviceEpoch = new Map<string, string>();
      await waitFor('the pods and group Services to match the converged status', async () => {
        pods = await podsOf(ctx, 'swarm');
        const services = await ctx.core.listNamespacedService({ namespace: ctx.namespace, labelSelector: `${LABELS.deployment}=swarm` });
        const groupServices = services.items.filter((s) => s.metadata?.labels?.[LABELS.group] !== undefined);
        serviceEpoch = new Map(groupServices.map((s) => [s.metadata!.labels![LABELS.group]!, s.metadata!.annotations!['inference.bloom.dev/epoch']!]));
        return groupServices.length === GROUPS && pods.length === GROUPS && pods.every((p) => !p.metadata?.deletionTimestamp);
      }, 60_000, 500).catch(() => {});
      assert.equal(serviceEpoch.size, GROUPS, 'one Service per group, no orphans');
      assert.equal(pods.length, GROUPS, 'one pod per (single-pod) group: no duplicate or orphan pods');
      for (const pod of pods) {
        const g = pod.metadata!.labels![LABELS.group]!;
        assert.equal(pod.metadata!.labels![LABELS.epoch], serviceEpoch.get(g), `pod ${pod.metadata!.name} belongs to its group's current epoch`);
      }
    });
  });
}

chaos(`chaos: ${GROUPS} groups under random rank faults, an operator kill and an API server restart`, 'chaos', false);
chaos(`chaos behind a fault proxy: the same, with 20% of LISTs and watches refused (503) and 30% of watches cut after 2 s`, 'chaos-proxy', true);
