import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { desiredRankPod } from '../../operator/src/groups/pod.js';
import { domainPicker } from '../../operator/src/lifecycle/placement.js';
import type { NodeView } from '../../operator/src/lifecycle/observe.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const node = (domain: string, gpus: number, over: Partial<NodeView> = {}): NodeView =>
  ({ ready: true, since: 0, unschedulable: false, labels: { 'kubernetes.io/hostname': domain, pool: 'a' }, allocatable: { 'nvidia.com/gpu': String(gpus) }, ...over });

function boundRanks(count: number, nodeName: string, group: number): V1Pod[] {
  const bd = bloomDeployment(8);
  return Array.from({ length: count }, (_, rank) => {
    const pod = desiredRankPod({ bd, group, rank, epoch: 1, revision: 'r', clusterDomain: CLUSTER_DOMAIN });
    pod.spec!.nodeName = nodeName;
    return pod;
  });
}

describe('domainPicker (gang placement of a new incarnation)', () => {
  const spec = bloomDeployment(4).spec;

  it('picks the fullest domain that still fits the whole group (best fit), and reserves it', () => {
    const nodes = new Map([['n1', node('n1', 8)], ['n2', node('n2', 8)], ['n3', node('n3', 8)]]);
    const pods = [...boundRanks(3, 'n1', 7), ...boundRanks(6, 'n2', 8)]; // n1: 5 free, n2: 2 free, n3: 8 free
    const picker = domainPicker(spec, nodes, pods);
    assert.equal(picker.pick('bloom-g0'), 'n1');
    assert.equal(picker.pick('bloom-g1'), 'n3', 'n1 now has 1 free GPU');
    assert.equal(picker.pick('bloom-g2'), 'n3');
    assert.equal(picker.pick('bloom-g3'), undefined, 'nothing fits: leave it to the scheduler');
  });

  it('counts reservations of pods not yet bound (their domain label)', () => {
    const nodes = new Map([['n1', node('n1', 8)]]);
    const bd = bloomDeployment(4);
    const pending = [0, 1, 2, 3, 4, 5].map((rank) => desiredRankPod({ bd, group: 5, rank, epoch: 1, revision: 'r', clusterDomain: CLUSTER_DOMAIN, domain: 'n1' }));
    assert.equal(domainPicker(spec, nodes, pending).pick('bloom-g0'), undefined);
  });

  it('skips cordoned, NotReady and non-selected nodes', () => {
    const nodes = new Map([
      ['n1', node('n1', 8, { unschedulable: true })],
      ['n2', node('n2', 8, { ready: false })],
      ['n3', node('n3', 8, { labels: { 'kubernetes.io/hostname': 'n3', pool: 'b' } })],
      ['n4', node('n4', 8)],
    ]);
    const selective = bloomDeployment(4, { placement: { nodeSelector: { pool: 'a' } } }).spec;
    assert.equal(domainPicker(selective, nodes, []).pick('bloom-g0'), 'n4');
  });

  it('keeps other groups out of a domain under exclusive placement', () => {
    const nodes = new Map([['n1', node('n1', 8)], ['n2', node('n2', 16)]]);
    const exclusive = bloomDeployment(4, { placement: { exclusive: true } }).spec;
    const picker = domainPicker(exclusive, nodes, boundRanks(1, 'n1', 3));
    assert.equal(picker.pick('bloom-g0'), 'n2');
    assert.equal(picker.pick('bloom-g1'), undefined, 'n2 holds group 0 now');
  });

  it('sums the nodes of a multi-node domain', () => {
    const nvl = (name: string) => node(name, 4, { labels: { 'nvidia.com/gpu.clique': 'nvl-a' } });
    const nodes = new Map([['a1', nvl('a1')], ['a2', nvl('a2')]]);
    const clique = bloomDeployment(8, { placement: { topologyKey: 'nvidia.com/gpu.clique' } }).spec;
    assert.equal(domainPicker(clique, nodes, []).pick('bloom-g0'), 'nvl-a');
  });
});

describe('domainPicker and exclusive neighbours', () => {
  it('never offers a domain that holds a rank of an exclusive group (its anti-affinity would refuse us)', () => {
    const nodes = new Map([['n1', node('n1', 8)], ['n2', node('n2', 8)]]);
    const exclusiveBd = bloomDeployment(4, { placement: { exclusive: true } });
    const lonely = desiredRankPod({ bd: exclusiveBd, group: 9, rank: 0, epoch: 1, revision: 'r', clusterDomain: CLUSTER_DOMAIN });
    lonely.spec!.nodeName = 'n1';
    assert.equal(domainPicker(bloomDeployment(4).spec, nodes, [lonely]).pick('other-g0'), 'n2');
  });
});
