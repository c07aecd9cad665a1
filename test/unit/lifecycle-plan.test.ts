import assert from 'node:assert/strict';
import type { V1Pod, V1PodDisruptionBudget, V1Service } from '@kubernetes/client-node';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { desiredGroupNetworkPolicy, type NetworkPolicy } from '../../operator/src/groups/network-policy.js';
import { desiredGroupPdb } from '../../operator/src/groups/pdb.js';
import { desiredGroupPod } from '../../operator/src/groups/pod.js';
import { podRevision } from '../../operator/src/groups/revision.js';
import { desiredClientService, desiredGroupService } from '../../operator/src/groups/service.js';
import type { Action } from '../../operator/src/lifecycle/actions.js';
import { recordAnnotations, type GroupRecord } from '../../operator/src/lifecycle/group-record.js';
import { planDeployment, type DeploymentObservation } from '../../operator/src/lifecycle/plan.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const T0 = Date.parse('2026-12-01T12:00:00Z');
// Two groups of one pod (TP=8 on 8 GPUs): the planner's bookkeeping, not the gang lifecycle (lifecycle-group.test.ts).
const bd: BloomDeployment = bloomDeployment(8, { replicas: 2 });
const revision = podRevision(bd.spec);

function groupService(index: number, over: Partial<GroupRecord> = {}, rv = `${10 + index}`): V1Service {
  const record: GroupRecord = { index, epoch: 1, revision, epochStarted: T0, restarts: 0, restartTimes: [], disruptions: 0, disruptionTimes: [], readySince: T0, ...over };
  const service = desiredGroupService(bd, index, record.epoch);
  const annotations = Object.fromEntries(Object.entries(recordAnnotations(record)).filter((e): e is [string, string] => e[1] !== null));
  service.metadata = { ...service.metadata, annotations: { ...service.metadata!.annotations, ...annotations }, resourceVersion: rv, uid: `svc-${index}` };
  return service;
}

function servingPod(index: number, epoch = 1): V1Pod {
  const pod = desiredGroupPod({ bd, group: index, pod: 0, epoch, revision, clusterDomain: CLUSTER_DOMAIN });
  pod.metadata!.uid = `pod-${index}-${epoch}`;
  pod.spec!.nodeName = `gpu-node-${index}`;
  pod.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date(T0) }], containerStatuses: [{ name: 'worker', image: 'x', imageID: '', ready: true, restartCount: 0 }] };
  return pod;
}

function pdb(index: number): V1PodDisruptionBudget {
  const p = desiredGroupPdb(bd, index);
  p.metadata = { ...p.metadata, uid: `pdb-${index}`, resourceVersion: '3' };
  return p;
}

function policy(index: number, epoch = 1): NetworkPolicy {
  const p = desiredGroupNetworkPolicy(bd, index, epoch);
  p.metadata = { ...p.metadata, uid: `np-${index}`, resourceVersion: '4' };
  return p;
}

const clientService = (): V1Service => ({ ...desiredClientService(bd), metadata: { ...desiredClientService(bd).metadata, resourceVersion: '5', uid: 'client' } });
const serving = (): DeploymentObservation => ({
  bd, services: [clientService(), groupService(0), groupService(1)], pods: [servingPod(0), servingPod(1)], pdbs: [pdb(0), pdb(1)],
  networkPolicies: [policy(0), policy(1)], nodes: undefined, now: T0 + 60_000, clusterDomain: CLUSTER_DOMAIN,
});
const writes = (actions: readonly Action[]) => actions.map((a) => `${a.scope}:${a.kind}`).sort();

describe('planDeployment (one reconcile, pure)', () => {
  const cases: Array<{ name: string; obs: () => DeploymentObservation; writes: string[]; phase?: string; check?: (actions: Action[]) => void }> = [
    { name: 'a serving deployment that matches its spec costs no write', obs: serving, writes: [], phase: 'Available' },
    {
      name: 'an empty cache creates the client Service, each group (Service, pod) and each budget, in their scopes',
      obs: () => ({ ...serving(), services: [], pods: [], pdbs: [], networkPolicies: [] }),
      writes: ['budget/0:createPdb', 'budget/1:createPdb', 'deployment:createService', 'group/0:createNetworkPolicy', 'group/0:createPod', 'group/0:createService', 'group/1:createNetworkPolicy', 'group/1:createPod', 'group/1:createService'],
      phase: 'Progressing',
    },
    {
      name: 'pods whose group Service the cache does not show are deleted as orphans to confirm live; their indices wait',
      obs: () => ({ ...serving(), services: [clientService()] }),
      writes: ['budget/2:createPdb', 'budget/3:createPdb', 'group/0:deletePod', 'group/1:deletePod', 'group/2:createNetworkPolicy', 'group/2:createPod', 'group/2:createService', 'group/3:createNetworkPolicy', 'group/3:createPod', 'group/3:createService'],
      check: (actions) => assert.deepEqual(actions.filter((a) => a.kind === 'deletePod').map((a) => a.kind === 'deletePod' && a.orphanOf), ['bloom-g0', 'bloom-g1']),
    },
    {
      name: 'a hand-edited client Service selector is applied back in one write, without annotations',
      obs: () => {
        const o = serving();
        o.services[0]!.spec!.selector = { ...o.services[0]!.spec!.selector, extra: 'x' };
        return o;
      },
      writes: ['deployment:applyService'],
      check: (actions) => {
        const apply = actions[0]!;
        assert.ok(apply.kind === 'applyService');
        assert.deepEqual(apply.service.spec?.selector, desiredClientService(bd).spec?.selector);
        assert.equal(apply.service.metadata?.annotations, undefined);
      },
    },
    {
      name: 'another controller\'s extra port on the client Service is left alone',
      obs: () => {
        const o = serving();
        o.services[0]!.spec!.ports = [...o.services[0]!.spec!.ports!, { name: 'sidecar', port: 9999 }];
        return o;
      },
      writes: [],
    },
    {
      name: 'a group Service whose port was edited is applied back; the record is not part of the apply',
      obs: () => {
        const o = serving();
        o.services[1]!.spec!.ports![0]!.port = 1;
        return o;
      },
      writes: ['group/0:applyService'],
      check: (actions) => assert.ok(actions[0]!.kind === 'applyService' && actions[0]!.service.metadata?.annotations === undefined),
    },
    {
      name: 'a budget edited by hand is applied back',
      obs: () => {
        const o = serving();
        o.pdbs![1]!.spec!.minAvailable = 0;
        return o;
      },
      writes: ['budget/1:applyPdb'],
    },
    {
      name: 'a budget without a group is deleted (by uid)',
      obs: () => ({ ...serving(), pdbs: [pdb(0), pdb(1), pdb(7)] }),
      writes: ['budget/7:deletePdb'],
      check: (actions) => assert.ok(actions[0]!.kind === 'deletePdb' && actions[0]!.uid === 'pdb-7'),
    },
    {
      name: 'budgets are not touched when the operator may not manage them',
      obs: () => ({ ...serving(), pdbs: undefined }),
      writes: [],
    },
    {
      name: 'scale down removes the highest group: its Service (by uid), pods and budget',
      obs: () => ({ ...serving(), bd: { ...bd, spec: { ...bd.spec, replicas: 1 } } }),
      writes: ['budget/1:deletePdb', 'group/1:deletePod', 'group/1:deleteService'],
      check: (actions) => assert.ok(actions.some((a) => a.kind === 'deleteService' && a.uid === 'svc-1')),
    },
    {
      name: 'a crashed pod bumps the epoch with exactly one record write and deletes the pod',
      obs: () => {
        const o = serving();
        o.pods[1]!.status!.phase = 'Failed';
        return o;
      },
      writes: ['group/1:applyNetworkPolicy', 'group/1:deletePod', 'group/1:patchRecord'],
      check: (actions) => {
        const record = actions.find((a) => a.kind === 'patchRecord');
        assert.ok(record?.kind === 'patchRecord');
        assert.equal(record.resourceVersion, '11');
        assert.equal(record.selector?.['inference.bloom.dev/epoch'], '2');
        const apply = actions.find((a) => a.kind === 'applyNetworkPolicy');
        assert.ok(apply?.kind === 'applyNetworkPolicy');
        assert.deepEqual(apply.policy.spec, desiredGroupNetworkPolicy(bd, 1, 2).spec, 'the rendezvous ports admit the new incarnation only');
      },
    },
    {
      name: 'a reset and a failure in one reconcile make one record write (two would share a resourceVersion)',
      obs: () => {
        const o = serving();
        o.bd = { ...bd, metadata: { ...bd.metadata, annotations: { 'inference.bloom.dev/reset-restarts': 'now' } } };
        o.pods[0]!.status!.phase = 'Failed';
        return { ...o, services: [clientService(), groupService(0, { restartTimes: [T0], restarts: 1 }), groupService(1, { resetToken: 'now' })] };
      },
      writes: ['group/0:applyNetworkPolicy', 'group/0:deletePod', 'group/0:patchRecord'],
    },
    {
      name: 'a hand-edited NetworkPolicy is applied back',
      obs: () => {
        const o = serving();
        o.networkPolicies[0]!.spec!.ingress = [];
        return o;
      },
      writes: ['group/0:applyNetworkPolicy'],
    },
    {
      name: 'a removed group keeps its NetworkPolicy while its pods terminate; a policy without group or pods is deleted (by uid)',
      obs: () => ({ ...serving(), bd: { ...bd, spec: { ...bd.spec, replicas: 1 } }, networkPolicies: [policy(0), policy(1), policy(7)] }),
      writes: ['budget/1:deletePdb', 'group/1:deletePod', 'group/1:deleteService', 'group/7:deleteNetworkPolicy'],
      check: (actions) => assert.ok(actions.some((a) => a.kind === 'deleteNetworkPolicy' && a.uid === 'np-7')),
    },
    {
      name: 'spec.network.policy None deletes the groups\' NetworkPolicies and creates none',
      obs: () => ({ ...serving(), bd: { ...bd, spec: { ...bd.spec, network: { ...bd.spec.network, policy: 'None' } } } }),
      writes: ['group/0:deleteNetworkPolicy', 'group/1:deleteNetworkPolicy'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plan = planDeployment(c.obs());
      assert.deepEqual(writes(plan.actions), c.writes);
      if (c.phase) assert.equal(plan.status.phase, c.phase);
      c.check?.(plan.actions);
    });
  }

  it('is not Available without its own client Service, however many groups are ready', () => {
    const plan = planDeployment({ ...serving(), services: serving().services.slice(1) });
    const available = plan.status.conditions?.find((c) => c.type === 'Available');
    assert.equal(available?.status, 'False');
    assert.equal(available?.reason, 'NoClientService');
    assert.notEqual(plan.status.phase, 'Available');
  });

  it('tags events with the scope whose writes they report', () => {
    const plan = planDeployment({ ...serving(), services: [], pods: [], pdbs: [], networkPolicies: [] });
    assert.deepEqual(plan.events.map((e) => `${e.scope}:${e.reason}`), ['group/0:GroupCreated', 'group/1:GroupCreated']);
  });
});
