/**
 * The operator under API faults, behind the fault-injecting proxy (test/faultproxy): failed LISTs
 * at a leader hand-over, watches cut every few seconds, writes the API refuses, objects it does
 * not own, hand edits. What it did is read from the apiserver's audit log and the objects.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';

import type { BloomDeployment } from '../../operator/src/api/types.js';
import { LABELS } from '../../operator/src/groups/labels.js';
import { CLIENTS } from '../cluster/pki.js';
import { waitFor } from '../cluster/processes.js';
import { startFaultProxyFor, type FaultProxy } from '../faultproxy/index.js';
import { writesBy } from './audit.js';
import { useE2e, type E2eContext } from './fixture.js';
import { epochsByGroup, watchInvariant } from './observe.js';
import { createBd, customObjects, getBd, installCrd, kubectl, metricValue, podsOf, startOperator, testDeployment, waitForBd, type OperatorProcess } from './operator-harness.js';

const OPERATOR_USER = CLIENTS.operator.cn;
const CUT_WINDOW_MS = Number(process.env.BLOOM_WATCH_CUT_MS ?? 60_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const available = (bd: BloomDeployment) => bd.status?.conditions?.find((c) => c.type === 'Available')?.status === 'True';
const scale = (ctx: E2eContext, name: string, replicas: number) => kubectl(ctx.cluster, '-n', ctx.namespace, 'scale', `bloomdeployment/${name}`, `--replicas=${replicas}`);

async function eventsOf(ctx: E2eContext, bd: string): Promise<CoreV1Event[]> {
  const list = await ctx.core.listNamespacedEvent({ namespace: ctx.namespace, fieldSelector: `involvedObject.name=${bd}` });
  return list.items;
}

/** Polls the deployment until `until` settles; returns the moments it was not Available. */
async function watchAvailable(ctx: E2eContext, name: string, until: Promise<unknown>): Promise<{ samples: number; unavailable: string[] }> {
  let done = false;
  void until.finally(() => { done = true; });
  const unavailable: string[] = [];
  let samples = 0;
  while (!done) {
    const bd = await getBd(ctx, name);
    samples++;
    if (!available(bd)) unavailable.push(JSON.stringify(bd.status?.conditions));
    await sleep(200);
  }
  return { samples, unavailable };
}

describe('the operator under API faults (fault-injecting proxy)', function () {
  const ctx = useE2e('faults');
  let proxy: FaultProxy;
  let direct: OperatorProcess | undefined;
  let proxied: OperatorProcess | undefined;
  const leaderArgs = () => ['--namespace', ctx.namespace, '--leader-elect', '--leader-election-namespace', ctx.namespace, '--leader-election-id', 'faults', '--lease-duration', '4'];

  before(async () => {
    await installCrd(ctx.cluster);
    proxy = await startFaultProxyFor(ctx.cluster, 'operator');
  });
  after(async () => {
    await direct?.stop();
    await proxied?.stop();
    await proxy?.close();
  });

  it('a standby takes over while its first LISTs of Services, pods and BloomDeployments fail: no pod deleted, no group restarted, Available throughout, a scale-up served within seconds of the faults ending', async () => {
    direct = await startOperator(ctx.cluster, { name: 'direct', extraArgs: leaderArgs() });
    await createBd(ctx, testDeployment('steady', { replicas: 2 }));
    await waitForBd(ctx, 'steady', '2 ready groups', (b) => b.status?.readyReplicas === 2 && available(b));

    let faulty = true;
    const failing = ['services', 'pods', 'bloomdeployments'].map((resource) =>
      proxy.addRule({ match: { verb: 'list', resource, predicate: () => faulty }, action: { kind: 'status', code: 503 } }));
    proxied = await startOperator(ctx.cluster, { name: 'proxied', kubeconfig: proxy.kubeconfig(join(ctx.cluster.logDir, 'proxied.kubeconfig')), extraArgs: leaderArgs() });
    const since = Date.now();
    const watching = (async () => {
      await direct!.kill();
      direct = undefined;
      await scale(ctx, 'steady', 3);
      await waitFor('the new leader to fail 3 LISTs of each', async () => failing.every((r) => r.hits >= 3), 60_000, 100);
      faulty = false;
      const end = Date.now();
      await waitForBd(ctx, 'steady', '3 ready groups', (b) => b.status?.readyReplicas === 3, 60_000);
      return Date.now() - end;
    })();
    const [servedMs, seen] = await Promise.all([watching, watchAvailable(ctx, 'steady', watching)]);
    assert.deepEqual(seen.unavailable, [], `Available throughout (${seen.samples} samples)`);
    assert.ok(servedMs < 15_000, `the scale-up was served ${servedMs} ms after the faults ended`);

    const writes = writesBy(ctx.cluster.auditLog, OPERATOR_USER, since).filter((e) => e.objectRef?.namespace === ctx.namespace);
    assert.deepEqual(writes.filter((e) => e.verb === 'delete' && e.objectRef?.resource === 'pods').map((e) => e.objectRef?.name), [], 'no pod deleted');
    const bd = await getBd(ctx, 'steady');
    assert.deepEqual((bd.status?.groups ?? []).map((g) => [g.index, g.epoch, g.restarts]), [[0, 1, 0], [1, 1, 0], [2, 1, 0]], 'no group restarted');
    console.log(`      LISTs refused: ${failing.map((r) => r.hits).join('/')} (services/pods/bloomdeployments); scale-up served ${servedMs} ms after the faults ended`);
    failing.forEach((r) => r.remove());
  });

  it(`watches cut every 3 s for ${CUT_WINDOW_MS / 1000} s: no duplicate or old-epoch pod, no group restart, no more re-lists than cuts`, async () => {
    assert.ok(proxied, 'the proxied operator leads');
    const listsBefore = proxy.count({ verb: 'list' });
    const cuts = proxy.addRule({ match: { verb: 'watch' }, action: { kind: 'cutWatch', afterMs: 3_000 } });
    const cutOpen = proxy.cutWatches();
    const since = Date.now();
    const churn = (async () => {
      const end = Date.now() + CUT_WINDOW_MS;
      for (let round = 0; Date.now() < end; round++) {
        await scale(ctx, 'steady', round % 2 === 0 ? 5 : 3);
        await waitForBd(ctx, 'steady', 'scaled', (b) => b.status?.readyReplicas === (round % 2 === 0 ? 5 : 3) && b.status.replicas === b.status.readyReplicas, 60_000);
        await sleep(1_000);
      }
    })();
    const { violations } = await watchInvariant(ctx, 'steady', (pods: V1Pod[]) => {
      const live = pods.filter((p) => !p.metadata?.deletionTimestamp);
      const slots = new Map<string, number>();
      for (const p of live) slots.set(p.metadata!.labels![LABELS.group]!, (slots.get(p.metadata!.labels![LABELS.group]!) ?? 0) + 1);
      const duplicated = [...slots].filter(([, n]) => n > 1);
      const old = pods.filter((p) => p.metadata?.labels?.[LABELS.epoch] !== '1');
      return duplicated.length || old.length ? `duplicates ${JSON.stringify(duplicated)}, old epochs ${old.map((p) => p.metadata?.name)}` : undefined;
    }, churn);
    await churn;
    cuts.remove();
    const relists = proxy.count({ verb: 'list' }) - listsBefore;
    assert.deepEqual(violations, [], 'never two pods for one group, never a pod of another epoch');
    assert.ok(cutOpen >= 3 && cuts.hits > 10, `${cutOpen} + ${cuts.hits} watches cut`);
    // A re-watch resumes from the last resourceVersion (bookmarks keep it fresh): re-lists are the rare 410s, not one per cut.
    assert.ok(relists <= Math.floor((cuts.hits + cutOpen) / 10), `${relists} re-lists for ${cuts.hits + cutOpen} cuts`);
    const writes = writesBy(ctx.cluster.auditLog, OPERATOR_USER, since).filter((e) => e.objectRef?.namespace === ctx.namespace);
    assert.deepEqual(writes.filter((e) => e.verb === 'create' && e.responseStatus?.code === 409).map((e) => e.objectRef?.name), [], 'no duplicate create');
    const bd = await getBd(ctx, 'steady');
    assert.ok((bd.status?.groups ?? []).every((g) => g.epoch === 1 && g.restarts === 0), 'no group restarted');
    assert.ok([...epochsByGroup(await podsOf(ctx, 'steady')).values()].every((e) => e.size === 1 && e.has('1')));
    console.log(`      ${cutOpen + cuts.hits} watches cut, ${relists} re-lists`);
  });

  it('a hand-edited client Service selector is repaired in one write, and the next reconciles write nothing', async () => {
    assert.ok(proxied);
    const before = (await ctx.core.readNamespacedService({ name: 'steady', namespace: ctx.namespace })).spec?.selector;
    const since = Date.now();
    await kubectl(ctx.cluster, '-n', ctx.namespace, 'patch', 'service', 'steady', '--type=merge', '-p', JSON.stringify({ spec: { selector: { hand: 'edited' } } }));
    await waitFor('the selector repaired', async () => JSON.stringify((await ctx.core.readNamespacedService({ name: 'steady', namespace: ctx.namespace })).spec?.selector) === JSON.stringify(before), 30_000, 100);
    await sleep(1_000);
    const repairs = writesBy(ctx.cluster.auditLog, OPERATOR_USER, since).filter((e) => e.objectRef?.namespace === ctx.namespace && e.objectRef?.resource !== 'leases');
    assert.deepEqual(repairs.map((e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name}`), ['patch services/steady'], 'one write repairs it');
    const quiet = Date.now();
    for (let i = 0; i < 10; i++) {
      // An annotation change is an event on the deployment: each one forces a full reconcile (30 s of them).
      await kubectl(ctx.cluster, '-n', ctx.namespace, 'annotate', '--overwrite', 'bloomdeployment', 'steady', `touch=${i}`);
      await sleep(3_000);
    }
    const extra = writesBy(ctx.cluster.auditLog, OPERATOR_USER, quiet).filter((e) => e.objectRef?.namespace === ctx.namespace && e.objectRef?.resource !== 'leases');
    assert.deepEqual(extra.map((e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name}`), [], 'zero writes after the repair');
  });

  it('a PodDisruptionBudget the API refuses (a ValidatingAdmissionPolicy): the groups are still created and serve; a Warning event (aggregated) and ReplicaFailure name the refusal', async () => {
    const name = `no-budgets-${ctx.namespace}`;
    const policy = {
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: { name },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: ['policy'], apiVersions: ['v1'], operations: ['CREATE'], resources: ['poddisruptionbudgets'] }] },
        validations: [{ expression: 'false', message: 'budgets here are owned by the platform team' }],
      },
    };
    const binding = {
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name },
      spec: { policyName: name, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ctx.namespace } } } },
    };
    await customObjects(ctx.kc).createClusterCustomObject({ group: 'admissionregistration.k8s.io', version: 'v1', plural: 'validatingadmissionpolicies', body: policy });
    await customObjects(ctx.kc).createClusterCustomObject({ group: 'admissionregistration.k8s.io', version: 'v1', plural: 'validatingadmissionpolicybindings', body: binding });
    try {
      await waitFor('the policy in force', async () => {
        try {
          await kubectl(ctx.cluster, '-n', ctx.namespace, 'create', 'pdb', 'probe', '--selector=a=b', '--min-available=1', '--dry-run=server');
          return false;
        } catch (err) {
          return /platform team/.test(String((err as { stderr?: string }).stderr ?? err));
        }
      }, 30_000, 250);
      await createBd(ctx, testDeployment('nobudget', { replicas: 1 }));
      const bd = await waitForBd(ctx, 'nobudget', 'serving and reporting the refusal', (b) =>
        b.status?.readyReplicas === 1 && b.status.conditions?.find((c) => c.type === 'ReplicaFailure')?.status === 'True', 60_000);
      const condition = bd.status!.conditions!.find((c) => c.type === 'ReplicaFailure')!;
      assert.equal(condition.reason, 'FailedCreate');
      assert.match(condition.message ?? '', /PodDisruptionBudget nobudget-g0: .*platform team/);
      await waitFor('the refusal event counted more than once', async () => (await eventsOf(ctx, 'nobudget')).some((e) => e.reason === 'FailedCreate' && (e.count ?? 0) >= 2), 30_000, 250);
      const refusals = (await eventsOf(ctx, 'nobudget')).filter((e) => e.reason === 'FailedCreate');
      assert.equal(refusals.length, 1, 'one aggregated Event, not one per retry');
      assert.equal(refusals[0]!.type, 'Warning');
      assert.match(refusals[0]!.message ?? '', /platform team/);
      assert.equal((await podsOf(ctx, 'nobudget')).length, 1, 'the group was created');
    } finally {
      await customObjects(ctx.kc).deleteClusterCustomObject({ group: 'admissionregistration.k8s.io', version: 'v1', plural: 'validatingadmissionpolicybindings', name });
      await customObjects(ctx.kc).deleteClusterCustomObject({ group: 'admissionregistration.k8s.io', version: 'v1', plural: 'validatingadmissionpolicies', name });
    }
    await waitForBd(ctx, 'nobudget', 'ReplicaFailure cleared once the budget is created', (b) => !b.status?.conditions?.some((c) => c.type === 'ReplicaFailure'), 120_000);
    await waitFor('the budget created', async () => (await kubectl(ctx.cluster, '-n', ctx.namespace, 'get', 'pdb', 'nobudget-g0', '-o', 'name')).trim() === 'poddisruptionbudget.policy/nobudget-g0', 30_000);
  });

  it('a foreign Service with the client Service\'s name: a Warning event and a condition, never Available through it', async () => {
    const foreign = { metadata: { name: 'squatted', labels: { app: 'someone-else' } }, spec: { selector: { app: 'someone-else' }, ports: [{ port: 80 }] } };
    await ctx.core.createNamespacedService({ namespace: ctx.namespace, body: foreign });
    await createBd(ctx, testDeployment('squatted', { replicas: 1 }));
    const bd = await waitForBd(ctx, 'squatted', 'its group ready, the conflict reported', (b) =>
      b.status?.readyReplicas === 1 && b.status.conditions?.find((c) => c.type === 'ReplicaFailure')?.status === 'True', 60_000);
    const availability = bd.status!.conditions!.find((c) => c.type === 'Available')!;
    assert.deepEqual([availability.status, availability.reason], ['False', 'NoClientService']);
    assert.notEqual(bd.status?.phase, 'Available');
    assert.match(bd.status!.conditions!.find((c) => c.type === 'ReplicaFailure')!.message ?? '', /services squatted already exists and is not controlled by BloomDeployment squatted/);
    const warning = (await eventsOf(ctx, 'squatted')).find((e) => e.reason === 'FailedCreate');
    assert.equal(warning?.type, 'Warning');
    const service = await ctx.core.readNamespacedService({ name: 'squatted', namespace: ctx.namespace });
    assert.deepEqual(service.spec?.selector, { app: 'someone-else' }, 'the foreign Service is left alone');
    assert.equal(service.metadata?.ownerReferences, undefined);
    await sleep(3_000);
    assert.ok(!available(await getBd(ctx, 'squatted')), 'still not Available');
    assert.ok((await metricValue(proxied!, 'bloom_operator_write_failures_total', { deployment: 'squatted', reason: 'FailedCreate' }) ?? 0) >= 1);
  });
});
