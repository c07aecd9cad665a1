import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoordinationV1Api, RbacAuthorizationV1Api, type V1PolicyRule } from '@kubernetes/client-node';
import yaml from 'js-yaml';
import { LABELS } from '../../operator/src/groups/labels.js';
import { tokenKubeconfig, writeKubeconfig } from '../cluster/kubeconfig.js';
import { repoRoot } from '../cluster/paths.js';
import { waitFor } from '../cluster/processes.js';
import { useE2e, type E2eContext } from './fixture.js';
import { createBd, installCrd, kubectl, metricValue, podsOf, startOperator, testDeployment, waitForBd, type OperatorOptions, type OperatorProcess } from './operator-harness.js';

const LEASE = 'bloom-operator';
const LEASE_SECONDS = 6;

/**
 * A kubeconfig of a ServiceAccount with every namespaced permission of the chart's rule list
 * except list and watch on pods: its pod informer can never sync.
 */
async function podBlindKubeconfig(ctx: E2eContext, name: string): Promise<string> {
  const all = yaml.load(readFileSync(join(repoRoot(), 'charts', 'bloom-operator', 'files', 'rbac-rules.yaml'), 'utf8')) as Record<string, V1PolicyRule[]>;
  const rules = [...all.watched!, ...all.leaderElection!].map((r) =>
    (r.resources?.includes('pods') ? { ...r, verbs: r.verbs.filter((v) => v !== 'list' && v !== 'watch') } : r));
  const namespace = ctx.namespace;
  const rbac = ctx.kc.makeApiClient(RbacAuthorizationV1Api);
  await ctx.core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  await rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules } });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name, namespace }] },
  });
  const token = await ctx.core.createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  return writeKubeconfig(join(ctx.cluster.stateDir, `${name}.kubeconfig`),
    tokenKubeconfig(ctx.cluster.server, join(ctx.cluster.pkiDir, 'ca.crt'), name, token.status!.token!));
}

describe('high availability (Lease leader election) and metrics', function () {
  const ctx = useE2e('ha');
  const operators: OperatorProcess[] = [];
  const start = async (name: string, options: Omit<OperatorOptions, 'name'> = {}) => {
    const op = await startOperator(ctx.cluster, {
      ...options,
      name,
      extraArgs: ['--namespace', ctx.namespace, '--leader-elect', '--leader-election-namespace', ctx.namespace, '--lease-duration', String(LEASE_SECONDS), '--identity', name, ...(options.extraArgs ?? [])],
    });
    operators.push(op);
    return op;
  };
  const isLeader = async (op: OperatorProcess) => (await metricValue(op, 'bloom_operator_leader').catch(() => 0)) === 1;
  const holder = async () => (await ctx.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE, namespace: ctx.namespace })).spec?.holderIdentity ?? '';

  before(async () => installCrd(ctx.cluster));
  after(async () => { for (const op of operators) await op.stop(); });

  it('lets exactly one of two replicas reconcile; a killed leader is replaced within the lease duration without duplicates', async () => {
    const a = await start('replica-a');
    const b = await start('replica-b');
    await waitFor('a leader', async () => (await isLeader(a)) || (await isLeader(b)), 30_000);
    const [leader, standby] = (await isLeader(a)) ? [a, b] : [b, a];
    assert.equal(await isLeader(standby), false);
    assert.equal(await holder(), leader === a ? 'replica-a' : 'replica-b');

    await createBd(ctx, testDeployment('ha', { replicas: 2, tensorParallelSize: 4 }));
    await waitForBd(ctx, 'ha', '2 ready groups', (bd) => bd.status?.readyReplicas === 2);
    assert.ok((await metricValue(leader, 'bloom_operator_reconcile_total', { result: 'success' }))! > 0);
    assert.equal(await metricValue(standby, 'bloom_operator_reconcile_total', { result: 'success' }), 0, 'the standby never reconciles');

    await leader.kill();
    const killedAt = Date.now();
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'scale', 'bd/ha', '--replicas=3');
    await waitFor('the standby to lead', () => isLeader(standby), (LEASE_SECONDS + 10) * 1000, 100);
    const takeover = (Date.now() - killedAt) / 1000;
    assert.ok(takeover <= LEASE_SECONDS + 3, `took over after ${takeover.toFixed(1)} s (lease ${LEASE_SECONDS} s)`);
    await waitForBd(ctx, 'ha', '3 ready groups', (bd) => bd.status?.readyReplicas === 3);
    const pods = await podsOf(ctx, 'ha');
    assert.equal(pods.length, 3, 'one pod (4 GPUs, 4 ranks) per group, no duplicate pods');
    assert.equal(new Set(pods.map((p) => `${p.metadata?.labels?.[LABELS.group]}/${p.metadata?.labels?.[LABELS.pod]}`)).size, 3, 'one pod per (group, pod index)');
  });

  it('releases the lease on SIGTERM so a standby takes over at once', async () => {
    const leaders = await Promise.all(operators.map(async (op) => ((await isLeader(op)) ? op : undefined)));
    const leader = leaders.find((op) => op !== undefined)!;
    const standby = await start('replica-c');
    assert.equal(await isLeader(standby), false);
    const stoppedAt = Date.now();
    await leader.stop();
    assert.equal(await holder(), '', 'the lease is released on graceful shutdown');
    await waitFor('the new replica to lead', () => isLeader(standby), LEASE_SECONDS * 1000, 100);
    const takeover = (Date.now() - stoppedAt) / 1000;
    assert.ok(takeover < LEASE_SECONDS / 2, `took over after ${takeover.toFixed(1)} s, well within the lease duration`);
  });

  it('exposes reconciles, queue depth, groups by phase, restarts and leadership on /metrics', async () => {
    const leader = operators.at(-1)!;
    await createBd(ctx, testDeployment('metered', { replicas: 2, tensorParallelSize: 2, failurePolicy: { backoffSeconds: 0 } }));
    const ready = await waitForBd(ctx, 'metered', 'ready', (bd) => bd.status?.readyReplicas === 2);
    const victim = (await podsOf(ctx, 'metered')).find((p) => p.metadata?.labels?.['inference.bloom.dev/group'] === '1')!;
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'label', 'pod', victim.metadata!.name!, 'pod-container-running-failed.stage.kwok.x-k8s.io=true');
    await waitForBd(ctx, 'metered', 'group 1 recreated', (bd) => bd.status?.readyReplicas === 2 && bd.status.groups?.[1]?.epoch === (ready.status!.groups![1]!.epoch + 1));
    const labels = { namespace: ctx.namespace, deployment: 'metered' };
    await waitFor('metrics to settle', async () => (await metricValue(leader, 'bloom_operator_groups', { ...labels, phase: 'Ready' })) === 2, 10_000);
    assert.equal(await metricValue(leader, 'bloom_operator_groups', { ...labels, phase: 'Restarting' }), 0);
    assert.equal(await metricValue(leader, 'bloom_operator_group_restarts_total', labels), 1);
    assert.equal(await metricValue(leader, 'bloom_operator_leader'), 1);
    assert.equal(await metricValue(leader, 'bloom_operator_workqueue_depth'), 0);
    assert.ok((await metricValue(leader, 'bloom_operator_reconcile_total', { result: 'success' }))! >= 3);
    assert.ok((await metricValue(leader, 'bloom_operator_reconcile_duration_seconds_count'))! >= 3);
  });

  it('a leader whose controller cannot start exits and the standby leads within the lease duration', async () => {
    for (const op of operators) await op.stop(); // the lease is free, nothing reconciles
    const SYNC_TIMEOUT_SECONDS = 5;
    const kubeconfig = await podBlindKubeconfig(ctx, 'pod-blind');
    const blind = await start('replica-pod-blind', {
      kubeconfig, waitReady: false, extraArgs: ['--no-watch-nodes', '--cache-sync-timeout', String(SYNC_TIMEOUT_SECONDS)],
    });
    await waitFor('the pod-blind replica to lead', async () => (await holder()) === 'replica-pod-blind', 15_000, 100);
    const standby = await start('replica-standby');
    assert.equal(await isLeader(standby), false, 'the standby starts while the pod-blind replica leads');

    let code: number | null | undefined;
    void blind.exited.then((c) => { code = c; });
    await waitFor(`the pod-blind leader to exit: its caches cannot sync (log ${blind.logFile})`, () => code !== undefined, (SYNC_TIMEOUT_SECONDS + 15) * 1000);
    assert.equal(code, 1, 'a non-zero exit');
    const exitedAt = Date.now();
    await waitFor('the standby to hold the lease', async () => (await holder()) === 'replica-standby', LEASE_SECONDS * 1000, 100);
    const takeover = (Date.now() - exitedAt) / 1000;
    assert.ok(takeover < LEASE_SECONDS / 2, `took over ${takeover.toFixed(1)} s after the exit: the lease was released, not left to expire`);
    assert.match(readFileSync(blind.logFile, 'utf8'), /controller failed to start/);

    await createBd(ctx, testDeployment('after-failover', { replicas: 1, tensorParallelSize: 2 }));
    await waitForBd(ctx, 'after-failover', 'ready', (bd) => bd.status?.readyReplicas === 1);
    assert.ok((await metricValue(standby, 'bloom_operator_reconcile_total', { result: 'success' }))! > 0, 'the standby reconciles');
    assert.equal((await fetch(`${standby.metricsUrl}/healthz`)).status, 200, 'its reconcile loop is live');
  });
});
