/** The operator's writes (KubeWriter) and events (EventRecorder) against the real apiserver. */
import assert from 'node:assert/strict';
import type { V1Pod, V1Service } from '@kubernetes/client-node';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { EventRecorder } from '../../operator/src/controller/events.js';
import { ForeignObjectError, KubeWriter, statusCode } from '../../operator/src/controller/kube-writer.js';
import { GANG_SCHEDULING_GATE } from '../../operator/src/groups/pod.js';
import { applyConfiguration } from '../../operator/src/lifecycle/drift.js';
import { createLogger } from '../../operator/src/log.js';
import { useE2e } from './fixture.js';
import { createBd, installCrd, testDeployment } from './operator-harness.js';

describe('KubeWriter and EventRecorder on a real apiserver', function () {
  const ctx = useE2e('writer');
  let writer: KubeWriter;
  let owner: BloomDeployment;
  const owned = (name: string): V1Service => ({
    apiVersion: 'v1', kind: 'Service',
    metadata: {
      name, namespace: ctx.namespace, labels: { app: 'bloom' },
      ownerReferences: [{ apiVersion: owner.apiVersion!, kind: owner.kind!, name: owner.metadata.name!, uid: owner.metadata.uid!, controller: true }],
    },
    spec: { selector: { app: 'bloom', role: 'leader' }, ports: [{ name: 'http', port: 80, targetPort: 8000, protocol: 'TCP' }] },
  });

  before(async () => {
    await installCrd(ctx.cluster);
    writer = new KubeWriter(ctx.kc);
    owner = await createBd(ctx, testDeployment('owner'));
  });

  it('a create that finds its own object succeeds; one that finds a foreign object fails with ForeignObjectError', async () => {
    await writer.createService(owned('mine'));
    await writer.createService(owned('mine'));
    await ctx.core.createNamespacedService({ namespace: ctx.namespace, body: { metadata: { name: 'theirs' }, spec: { ports: [{ port: 1 }] } } });
    await assert.rejects(writer.createService(owned('theirs')), (err: unknown) =>
      err instanceof ForeignObjectError && /services theirs already exists and is not controlled by BloomDeployment owner/.test(err.message));
  });

  it('server-side apply replaces a hand-edited (atomic) selector and a changed port, and is a no-op when nothing drifted', async () => {
    await ctx.core.patchNamespacedService({ name: 'mine', namespace: ctx.namespace, body: [
      { op: 'add', path: '/spec/selector/extra', value: 'x' }, { op: 'replace', path: '/spec/ports/0/targetPort', value: 9 },
    ] });
    const repaired = await writer.applyService(applyConfiguration(owned('mine')));
    assert.deepEqual(repaired?.spec?.selector, { app: 'bloom', role: 'leader' });
    assert.equal(repaired?.spec?.ports?.[0]?.targetPort, 8000);
    const again = await writer.applyService(applyConfiguration(owned('mine')));
    assert.equal(again?.metadata?.resourceVersion, repaired?.metadata?.resourceVersion, 'an unchanged apply writes nothing');
  });

  it('the record patch is guarded by the resourceVersion: a stale one fails with 409', async () => {
    const current = await ctx.core.readNamespacedService({ name: 'mine', namespace: ctx.namespace });
    await writer.patchServiceRecord(ctx.namespace, 'mine', current.metadata!.resourceVersion!, { 'inference.bloom.dev/epoch': '2' });
    await assert.rejects(writer.patchServiceRecord(ctx.namespace, 'mine', current.metadata!.resourceVersion!, { 'inference.bloom.dev/epoch': '3' }), (err) => statusCode(err) === 409);
  });

  it('ungating removes only the gate at the index it tested; a stale index fails with 422 and removes nothing', async () => {
    const pod: V1Pod = { metadata: { name: 'gated', namespace: ctx.namespace }, spec: {
      schedulingGates: [{ name: 'kueue.x-k8s.io/admission' }, { name: GANG_SCHEDULING_GATE }], containers: [{ name: 'c', image: 'x' }] } };
    await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: pod });
    await assert.rejects(writer.ungatePod(ctx.namespace, 'gated', 0), (err) => statusCode(err) === 422);
    await writer.ungatePod(ctx.namespace, 'gated', 1);
    const after = await ctx.core.readNamespacedPod({ name: 'gated', namespace: ctx.namespace });
    assert.deepEqual(after.spec?.schedulingGates?.map((g) => g.name), ['kueue.x-k8s.io/admission']);
  });

  it('deletes by uid: a pod re-created under the same name is not deleted; a missing one is not an error', async () => {
    const uid = (await ctx.core.readNamespacedPod({ name: 'gated', namespace: ctx.namespace })).metadata!.uid!;
    await writer.deletePod(ctx.namespace, 'gated', 'another-uid', true);
    assert.equal((await ctx.core.readNamespacedPod({ name: 'gated', namespace: ctx.namespace })).metadata?.uid, uid);
    await writer.deletePod(ctx.namespace, 'gated', uid, true);
    await writer.deletePod(ctx.namespace, 'gated', uid, true);
  });

  it('aggregates repeated events into one Event with count and series; a different message is another Event', async () => {
    const recorder = new EventRecorder(ctx.kc, 'test', createLogger('error'));
    for (let i = 0; i < 3; i++) await recorder.emit(owner, { type: 'Warning', reason: 'FailedCreate', message: 'quota exceeded' });
    await recorder.emit(owner, { type: 'Warning', reason: 'FailedCreate', message: 'something else' });
    const events = (await ctx.core.listNamespacedEvent({ namespace: ctx.namespace, fieldSelector: 'involvedObject.name=owner' })).items;
    const quota = events.filter((e) => e.message === 'quota exceeded');
    assert.equal(quota.length, 1);
    assert.equal(quota[0]!.count, 3);
    assert.equal(quota[0]!.series?.count, 3);
    assert.ok(Date.parse(String(quota[0]!.lastTimestamp)) >= Date.parse(String(quota[0]!.firstTimestamp)));
    assert.equal(events.filter((e) => e.message === 'something else').length, 1);
  });
});
