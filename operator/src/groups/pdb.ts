/**
 * The PodDisruptionBudget of one group. A voluntary eviction of any pod would break
 * the whole group's communicator, and a pod-level budget cannot count groups, so each
 * group's budget asks for all its pods (minAvailable = pods per group): the
 * eviction API refuses to take a pod of a healthy group. (minAvailable as a number,
 * not maxUnavailable: for maxUnavailable the disruption controller derives the expected
 * pod count from the owner's scale subresource, which counts groups, not ranks.) Drains still complete: the operator replaces a group whose ranks sit on a
 * cordoned node (surge first, honouring rollout.maxSurge/maxUnavailable), then deletes
 * the old pods itself. Pods that are not Ready may always be evicted.
 */
import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import type { BloomDeployment } from '../api/types.js';
import { commonLabels, deploymentSelector, groupSelector } from './labels.js';
import { groupServiceName } from './names.js';
import { ownedMetadata } from './owner.js';
import { groupShape } from './shape.js';

export function desiredGroupPdb(bd: BloomDeployment, group: number): V1PodDisruptionBudget {
  const name = bd.metadata.name ?? '';
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: ownedMetadata(bd, groupServiceName(name, group), { ...commonLabels(name), ...deploymentSelector(name), ...groupSelector(name, group) }),
    spec: {
      minAvailable: groupShape(bd.spec).pods,
      selector: { matchLabels: groupSelector(name, group) },
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    },
  };
}
