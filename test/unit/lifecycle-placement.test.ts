import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { desiredGroupPod } from '../../operator/src/groups/pod.js';
import { domainPicker } from '../../operator/src/lifecycle/placement.js';
import type { NodeView } from '../../operator/src/lifecycle/observe.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const CLIQUE = 'nvidia.com/gpu.clique';
/** A node of an NVLink clique with `gpus` allocatable GPUs. */
const node = (name: string, clique: string, gpus: number, over: Partial<NodeView> = {}): NodeView =>
  ({ ready: true, since: 0, unschedulable: false, labels: { 'kubernetes.io/hostname': name, [CLIQUE]: clique, pool: 'a' }, allocatable: { 'nvidia.com/gpu': String(gpus) }, ...over });

/** TP=8 as 2 pods x 4 GPUs packed into one clique. */
const twoByFour = (spec: Parameters<typeof bloomDeployment>[1] = {}) =>
  bloomDeployment(8, { gpusPerPod: 4, ...spec, placement: { topologyKey: CLIQUE, ...spec.placement } });

/** A bound pod of another group using `gpus` GPUs of `nodeName`. */
function boundPod(bd: BloomDeployment, nodeName: string, group: number, over: (p: V1Pod) => void = () => {}): V1Pod {
  const pod = desiredGroupPod({ bd, group, pod: 0, epoch: 1, revision: 'r', clusterDomain: CLUSTER_DOMAIN });
  pod.spec!.nodeName = nodeName;
  over(pod);
  return pod;
}
const using = (gpus: number) => bloomDeployment(gpus, { placement: { topologyKey: CLIQUE } });

describe('domainPicker (gang placement of a new multi-pod incarnation)', () => {
  const spec = twoByFour().spec;

  it('needs a node per pod with gpusPerPod free GPUs, not a sum over the domain', () => {
    const nodes = new Map([
      ['a1', node('a1', 'nvl-a', 8)], ['a2', node('a2', 'nvl-a', 8)],
      ['b1', node('b1', 'nvl-b', 8)], ['b2', node('b2', 'nvl-b', 8)],
    ]);
    // nvl-a: 6 + 2 free (8 in sum, but no second node with 4); nvl-b: 4 + 4 free
    const pods = [boundPod(using(2), 'a1', 7), boundPod(using(6), 'a2', 8), boundPod(using(4), 'b1', 9), boundPod(using(4), 'b2', 10)];
    const picker = domainPicker(spec, nodes, pods);
    assert.equal(picker.pick('bloom-g0'), 'nvl-b');
    assert.equal(picker.pick('bloom-g1'), undefined, 'nvl-b is full now and nvl-a never fitted');
  });

  it('picks the fullest domain that still fits the whole group (best fit), and reserves its nodes', () => {
    const nodes = new Map([
      ['a1', node('a1', 'nvl-a', 8)], ['a2', node('a2', 'nvl-a', 8)],
      ['b1', node('b1', 'nvl-b', 8)], ['b2', node('b2', 'nvl-b', 8)],
    ]);
    const picker = domainPicker(spec, nodes, [boundPod(using(4), 'a1', 7)]); // nvl-a: 4 + 8 free, nvl-b: 8 + 8
    assert.equal(picker.pick('bloom-g0'), 'nvl-a');
    assert.equal(picker.pick('bloom-g1'), 'nvl-b', 'nvl-a has one node with 4 free left');
    assert.equal(picker.pick('bloom-g2'), 'nvl-b');
    assert.equal(picker.pick('bloom-g3'), undefined, 'nothing fits: leave it to the scheduler');
  });

  it('counts GPUs held by terminating pods (the scheduler does too)', () => {
    const nodes = new Map([['a1', node('a1', 'nvl-a', 8)], ['a2', node('a2', 'nvl-a', 8)]]);
    const terminating = [boundPod(using(8), 'a1', 3, (p) => { p.metadata!.deletionTimestamp = new Date(0); })];
    assert.equal(domainPicker(spec, nodes, terminating).pick('bloom-g0'), undefined);
    const finished = [boundPod(using(8), 'a1', 3, (p) => { p.status = { phase: 'Failed' }; })];
    assert.equal(domainPicker(spec, nodes, finished).pick('bloom-g0'), 'nvl-a', 'a Failed pod holds nothing');
  });

  it('counts the pods pinned to a domain and not yet bound', () => {
    const nodes = new Map([['a1', node('a1', 'nvl-a', 8)], ['a2', node('a2', 'nvl-a', 8)]]);
    const bd = twoByFour();
    const pending = [0, 1].map((pod) => desiredGroupPod({ bd, group: 5, pod, epoch: 1, revision: 'r', clusterDomain: CLUSTER_DOMAIN, domain: 'nvl-a' }));
    const picker = domainPicker(spec, nodes, pending);
    assert.equal(picker.pick('bloom-g0'), 'nvl-a', '4 + 4 free after the pending pods');
    assert.equal(picker.pick('bloom-g1'), undefined);
  });

  it('skips cordoned, NotReady and non-selected nodes', () => {
    const nodes = new Map([
      ['a1', node('a1', 'nvl-a', 8, { unschedulable: true })], ['a2', node('a2', 'nvl-a', 8)],
      ['b1', node('b1', 'nvl-b', 8, { ready: false })], ['b2', node('b2', 'nvl-b', 8)],
      ['c1', node('c1', 'nvl-c', 8, { labels: { 'kubernetes.io/hostname': 'c1', [CLIQUE]: 'nvl-c', pool: 'b' } })], ['c2', node('c2', 'nvl-c', 8)],
      ['d1', node('d1', 'nvl-d', 8)], ['d2', node('d2', 'nvl-d', 8)],
    ]);
    const selective = twoByFour({ placement: { nodeSelector: { pool: 'a' } } }).spec;
    assert.equal(domainPicker(selective, nodes, []).pick('bloom-g0'), 'nvl-d');
  });

  it('keeps other groups out of a domain under exclusive placement', () => {
    const nodes = new Map([
      ['a1', node('a1', 'nvl-a', 8)], ['a2', node('a2', 'nvl-a', 8)],
      ['b1', node('b1', 'nvl-b', 8)], ['b2', node('b2', 'nvl-b', 8)], ['b3', node('b3', 'nvl-b', 8)],
    ]);
    const exclusive = twoByFour({ placement: { exclusive: true } }).spec;
    const picker = domainPicker(exclusive, nodes, [boundPod(using(1), 'a1', 3)]);
    assert.equal(picker.pick('bloom-g0'), 'nvl-b');
    assert.equal(picker.pick('bloom-g1'), undefined, 'nvl-b holds group 0 now');
  });

  it('never offers a domain that holds a pod of an exclusive group (its anti-affinity would refuse us)', () => {
    const nodes = new Map([['a1', node('a1', 'nvl-a', 8)], ['a2', node('a2', 'nvl-a', 8)], ['b1', node('b1', 'nvl-b', 8)], ['b2', node('b2', 'nvl-b', 8)]]);
    const lonely = boundPod(bloomDeployment(1, { placement: { exclusive: true, topologyKey: CLIQUE } }), 'a1', 9);
    assert.equal(domainPicker(spec, nodes, [lonely]).pick('other-g0'), 'nvl-b');
  });

  it('leaves a single-pod group to the scheduler (one pod always fits one node or none)', () => {
    const nodes = new Map([['a1', node('a1', 'nvl-a', 8)]]);
    assert.equal(domainPicker(bloomDeployment(8).spec, nodes, []).pick('bloom-g0'), undefined);
  });
});
