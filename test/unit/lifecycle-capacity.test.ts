import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { PlacementLedger } from '../../operator/src/controller/placement-ledger.js';
import { desiredGroupPods } from '../../operator/src/groups/pod.js';
import { podRevision } from '../../operator/src/groups/revision.js';
import { fitGroup, podRequests, type ClusterView, type NodeUsage } from '../../operator/src/lifecycle/capacity.js';
import { planGroup } from '../../operator/src/lifecycle/group-plan.js';
import type { GroupRecord } from '../../operator/src/lifecycle/group-record.js';
import type { NodeView } from '../../operator/src/lifecycle/observe.js';
import { groupDemand } from '../../operator/src/lifecycle/placement.js';
import { parseQuantity } from '../../operator/src/lifecycle/quantity.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const CLIQUE = 'nvidia.com/gpu.clique';
const T0 = Date.parse('2026-12-02T08:00:00Z');
/** TP=8 as 2 pods x 4 GPUs, one clique per group. */
const deployment = (name: string, spec: Parameters<typeof bloomDeployment>[1] = {}, namespace = 'serving'): BloomDeployment => {
  const bd = bloomDeployment(8, { gpusPerPod: 4, placement: { topologyKey: CLIQUE, ...spec.placement }, ...spec });
  return { ...bd, metadata: { ...bd.metadata, name, namespace, uid: `uid-${name}` } };
};

const node = (clique: string, over: Partial<NodeView> = {}): NodeView =>
  ({ ready: true, since: 0, unschedulable: false, labels: { [CLIQUE]: clique }, allocatable: { 'nvidia.com/gpu': '8', cpu: '96', memory: '1Ti' }, taints: [], ...over });
/** Cliques a and b of two 8-GPU nodes each. */
const cliques = () => new Map<string, NodeView>([['a1', node('a')], ['a2', node('a')], ['b1', node('b')], ['b2', node('b')]]);
const gpus = (n: string, count: number): NodeUsage => ({ node: n, requests: { 'nvidia.com/gpu': count } });

function view(over: Partial<ClusterView> = {}): ClusterView {
  return { nodes: cliques(), usage: [], groupPods: [], reservations: [], ...over };
}

/** The pods of incarnation `epoch` of group 0 of `bd`, bound to `nodes` (in order) or pinned to `pinned` and unbound. */
function groupPods(bd: BloomDeployment, { nodes = [], pinned, epoch = 1 }: { nodes?: string[]; pinned?: string; epoch?: number }): V1Pod[] {
  return desiredGroupPods({ bd, group: 0, epoch, revision: podRevision(bd.spec), clusterDomain: CLUSTER_DOMAIN }).map((pod, i) => {
    pod.metadata!.uid = `${bd.metadata.name}-${i}`;
    pod.spec!.schedulingGates = [];
    if (nodes[i]) pod.spec!.nodeName = nodes[i];
    if (pinned) pod.spec!.affinity!.nodeAffinity = { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: CLIQUE, operator: 'In', values: [pinned] }] }] } };
    return pod;
  });
}

const domainOf = (fit: ReturnType<typeof fitGroup>) => ('domain' in fit ? fit.domain : `waiting: ${fit.waiting}`);

describe('capacity: where a multi-pod group fits (cluster-wide view)', () => {
  it('parses quantities as Kubernetes writes them', () => {
    assert.deepEqual(['8', '500m', '64Gi', '1.5k', '2e3', '1Ti', '0.5'].map(parseQuantity), [8, 0.5, 64 * 2 ** 30, 1500, 2000, 2 ** 40, 0.5]);
    assert.ok(Number.isNaN(parseQuantity('8 GPUs')));
  });

  it('charges a pod its containers, its largest init container if larger, and its overhead; requests fall back to limits', () => {
    const pod: V1Pod = { spec: {
      containers: [{ name: 'a', resources: { limits: { 'nvidia.com/gpu': '4', cpu: '2' }, requests: { cpu: '1' } } }, { name: 'b', resources: { requests: { cpu: '500m' } } }],
      initContainers: [{ name: 'i', resources: { requests: { cpu: '4', memory: '1Gi' } } }],
      overhead: { cpu: '250m' },
    } };
    assert.deepEqual(podRequests(pod), { 'nvidia.com/gpu': 4, cpu: 4.25, memory: 2 ** 30 });
  });

  it('chooses the fullest domain that still fits every pod on a node of its own', () => {
    const bd = deployment('m');
    const demand = groupDemand(bd, 0, 1);
    assert.deepEqual([demand.pods, demand.requests['nvidia.com/gpu']], [2, 4]);
    assert.equal(domainOf(fitGroup(view({ usage: [gpus('b1', 4)] }), demand)), 'b', 'b has 12 free GPUs, a 16: best fit');
    // 6 + 2 free GPUs in a is 8 in all but no second node with 4: the sum over a domain is not a fit.
    assert.equal(domainOf(fitGroup(view({ usage: [gpus('a1', 2), gpus('a2', 6), gpus('b1', 4)] }), demand)), 'b');
    const full = fitGroup(view({ usage: [gpus('a1', 6), gpus('b1', 6)] }), demand);
    assert.match(domainOf(full), /^waiting: no nvidia.com\/gpu.clique domain has 2 schedulable nodes with nvidia.com\/gpu=4.* free each/);
  });

  it('counts every workload: foreign pods and terminating pods hold their GPUs, CPU and memory count too', () => {
    const demand = groupDemand(deployment('m', { worker: { image: 'w', resources: { requests: { cpu: '64', memory: '512Gi' } } } }), 0, 1);
    assert.equal(demand.requests.cpu, 64);
    assert.equal(domainOf(fitGroup(view({ usage: [{ node: 'b1', requests: { cpu: 40 } }] }), demand)), 'a', 'b1 has the GPUs but not the CPU');
    assert.equal(domainOf(fitGroup(view({ usage: [{ node: 'a2', requests: { memory: 2 ** 40 } }, { node: 'b1', requests: { cpu: 40 } }] }), demand)).startsWith('waiting'), true);
  });

  it('offers only Ready, schedulable, tolerated nodes that match the node selector', () => {
    const demand = groupDemand(deployment('m'), 0, 1);
    const taint = { key: 'nvidia.com/gpu', value: 'reserved', effect: 'NoSchedule' };
    const nodes = (over: Partial<NodeView>) => new Map([...cliques(), ['b2', node('b', over)]]);
    const usage = [gpus('a1', 8)];
    assert.equal(domainOf(fitGroup(view({ nodes: nodes({}), usage }), demand)), 'b');
    for (const over of [{ ready: false }, { unschedulable: true }, { taints: [taint] }, { labels: { [CLIQUE]: 'b', 'node.kubernetes.io/instance-type': 'other' } }]) {
      const nodeSelected = groupDemand(deployment('m', { placement: { topologyKey: CLIQUE, nodeSelector: { 'node.kubernetes.io/instance-type': 'h100' } } }), 0, 1);
      const d = 'labels' in over ? nodeSelected : demand;
      const fit = fitGroup(view({ nodes: nodes(over), usage: 'labels' in over ? [] : usage }), d);
      assert.ok(domainOf(fit).startsWith('waiting'), `b2 with ${JSON.stringify(over)} is no room: ${domainOf(fit)}`);
    }
    const tolerating = groupDemand(deployment('m', { placement: { topologyKey: CLIQUE, tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] } }), 0, 1);
    assert.equal(domainOf(fitGroup(view({ nodes: nodes({ taints: [taint] }), usage }), tolerating)), 'b', 'a tolerated taint keeps the node');
  });

  it('counts groups placed but not bound yet (pinned pods in the cache) where they will go', () => {
    const other = deployment('other');
    const pinned = groupPods(other, { pinned: 'b' });
    const demand = groupDemand(deployment('m'), 0, 1);
    // Room for one more group, in b (4 + 4 GPUs free).
    const usage = [gpus('a1', 8), gpus('b1', 4), gpus('b2', 4)];
    assert.ok(domainOf(fitGroup(view({ usage, groupPods: pinned }), demand)).startsWith('waiting'), 'b is taken by the pinned group');
    // Half bound: its bound pod holds a node (in the usage), its pinned pod will take another.
    const half = groupPods(other, { nodes: ['b1'], pinned: 'b' });
    assert.ok(domainOf(fitGroup(view({ usage: [...usage, gpus('b1', 4)], groupPods: half }), demand)).startsWith('waiting'));
    assert.equal(domainOf(fitGroup(view({ usage, groupPods: pinned.map((p) => ({ ...p, metadata: { ...p.metadata, deletionTimestamp: new Date() } })) }), demand)), 'b', 'an unbound pod that is deleted holds nothing');
  });

  it('exclusive placement: a domain holding another group of the namespace is closed, both ways, and other namespaces do not count', () => {
    const exclusive = deployment('x', { placement: { topologyKey: CLIQUE, exclusive: true } });
    const shared = deployment('s');
    const inB = (bd: BloomDeployment) => groupPods(bd, { nodes: ['b1'] });
    const usage = [gpus('b1', 4)];
    assert.equal(domainOf(fitGroup(view({ usage, groupPods: inB(shared) }), groupDemand(exclusive, 0, 1))), 'a', 'an exclusive group avoids a shared domain');
    assert.equal(domainOf(fitGroup(view({ usage, groupPods: inB(exclusive) }), groupDemand(shared, 0, 1))), 'a', 'a group keeps out of an exclusive group\'s domain');
    const elsewhere = deployment('x', { placement: { topologyKey: CLIQUE, exclusive: true } }, 'other-team');
    assert.equal(domainOf(fitGroup(view({ usage, groupPods: inB(elsewhere) }), groupDemand(shared, 0, 1))), 'b', 'exclusivity is per namespace, as the anti-affinity term');
    const full = fitGroup(view({ usage: [...usage, gpus('a1', 4)], groupPods: [...inB(shared), ...groupPods(deployment('t'), { nodes: ['a1'] })] }), groupDemand(exclusive, 0, 1));
    assert.match(domainOf(full), /2 held by other groups under exclusive placement/);
  });

  describe('the controller-wide ledger', () => {
    it('two planners racing for the last free domain: one wins, the other waits, and neither stalls', () => {
      let now = T0;
      const ledger = new PlacementLedger(60_000, () => now);
      const base = { nodes: cliques(), usage: [gpus('a1', 8), gpus('b1', 4), gpus('b2', 4)], groupPods: [] as V1Pod[] };
      const first = groupDemand(deployment('first'), 0, 1);
      const second = groupDemand(deployment('second'), 0, 1);
      assert.equal(domainOf(ledger.place(base, first)), 'b');
      assert.match(domainOf(ledger.place(base, second)), /^waiting/, 'b is reserved for the first, though no cache shows it yet');
      assert.equal(domainOf(ledger.place(base, first)), 'b', 'the winner gets the same domain again while its writes land');
      // The cache catches up (pods pinned to b), then the pods bind: b stays taken all along, the reservation no longer needed.
      const pinned = groupPods(deployment('first'), { pinned: 'b' });
      assert.match(domainOf(ledger.place({ ...base, groupPods: pinned }, second)), /^waiting/);
      now += 60_000;
      assert.match(domainOf(ledger.place({ ...base, groupPods: pinned }, second)), /^waiting/, 'after the reservation expires the pinned pods still hold b');
      const bound = groupPods(deployment('first'), { nodes: ['b1', 'b2'], pinned: 'b' });
      assert.match(domainOf(ledger.place({ ...base, usage: [...base.usage, gpus('b1', 4), gpus('b2', 4)], groupPods: bound }, second)), /^waiting/);
      // The room frees (the first deployment is deleted): the waiting group is placed on its next try.
      assert.equal(domainOf(ledger.place(base, second)), 'b');
    });

    it('an expired reservation whose writes never landed frees its domain', () => {
      let now = T0;
      const ledger = new PlacementLedger(60_000, () => now);
      const base = { nodes: cliques(), usage: [gpus('a1', 8), gpus('b1', 4), gpus('b2', 4)], groupPods: [] as V1Pod[] };
      ledger.place(base, groupDemand(deployment('first'), 0, 1));
      now += 59_999;
      assert.match(domainOf(ledger.place(base, groupDemand(deployment('second'), 0, 1))), /^waiting/);
      now += 1;
      assert.equal(domainOf(ledger.place(base, groupDemand(deployment('second'), 0, 1))), 'b');
    });
  });

  describe('planGroup with a placer (SchedulingGates)', () => {
    const bd = deployment('m');
    const revision = podRevision(bd.spec);
    const record: GroupRecord = { index: 0, epoch: 1, revision, epochStarted: T0, restarts: 0, restartTimes: [], disruptions: 0, disruptionTimes: [] };
    const gated = () => desiredGroupPods({ bd, group: 0, epoch: 1, revision, clusterDomain: CLUSTER_DOMAIN })
      .map((p, i) => { p.metadata!.uid = `u${i}`; p.status = { phase: 'Pending' }; return p; });
    const plan = (place: Parameters<typeof planGroup>[0]['place']) =>
      planGroup({ bd, record, serviceResourceVersion: '1', pods: gated(), nodes: cliques(), now: T0, revision, resetToken: undefined, clusterDomain: CLUSTER_DOMAIN, ...(place ? { place } : {}) });

    it('releases every pod at once, pinned to the chosen domain', () => {
      const placed = plan(() => ({ domain: 'b' }));
      assert.deepEqual(placed.actions.map((a) => a.kind === 'ungatePod' && [a.name, a.domain?.key, a.domain?.value]),
        [['m-g0-p0-e1', CLIQUE, 'b'], ['m-g0-p1-e1', CLIQUE, 'b']]);
      assert.equal(placed.state, 'Scheduling');
    });

    it('a release that landed on some pods only is finished into the same domain, without placing again', () => {
      const pods = gated();
      pods[0]!.spec!.schedulingGates = [];
      pods[0]!.spec!.affinity!.nodeAffinity = { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: CLIQUE, operator: 'In', values: ['a'] }] }] } };
      const rest = planGroup({ bd, record, serviceResourceVersion: '1', pods, nodes: cliques(), now: T0, revision, resetToken: undefined, clusterDomain: CLUSTER_DOMAIN, place: () => assert.fail('placed again') });
      assert.deepEqual(rest.actions.map((a) => a.kind === 'ungatePod' && [a.name, a.domain?.value]), [['m-g0-p1-e1', 'a']]);
    });

    it('waits gated while no domain has room: no write, no restart or disruption, planned again soon', () => {
      const waiting = plan(() => ({ waiting: 'no room' }));
      assert.deepEqual(waiting.actions, []);
      assert.equal(waiting.state, 'Gated');
      assert.deepEqual([waiting.status.restarts, waiting.status.disruptions ?? 0], [0, 0]);
      assert.match(waiting.status.message ?? '', /waiting for room: no room/);
      assert.ok(waiting.wakeAt !== undefined && waiting.wakeAt > T0 && waiting.wakeAt <= T0 + 10_000);
    });

    it('two deployments planned through one ledger: the first gets the last free domain, the second waits gated', () => {
      const ledger = new PlacementLedger();
      const base = { nodes: cliques(), usage: [gpus('a1', 8), gpus('b1', 4), gpus('b2', 4)], groupPods: [] as V1Pod[] };
      const placer = (of: BloomDeployment) => (group: number, epoch: number) => ledger.place(base, groupDemand(of, group, epoch));
      const one = deployment('one');
      const two = deployment('two');
      const planOf = (of: BloomDeployment) => {
        const rev = podRevision(of.spec);
        const pods = desiredGroupPods({ bd: of, group: 0, epoch: 1, revision: rev, clusterDomain: CLUSTER_DOMAIN }).map((p, i) => { p.metadata!.uid = `${of.metadata.name}${i}`; return p; });
        return planGroup({ bd: of, record: { ...record, revision: rev }, serviceResourceVersion: '1', pods, nodes: cliques(), now: T0, revision: rev, resetToken: undefined, clusterDomain: CLUSTER_DOMAIN, place: placer(of) });
      };
      const [a, b] = [planOf(one), planOf(two)];
      assert.deepEqual(a.actions.map((x) => x.kind === 'ungatePod' && x.domain?.value), ['b', 'b']);
      assert.deepEqual([b.actions.length, b.state], [0, 'Gated']);
    });
  });
});
