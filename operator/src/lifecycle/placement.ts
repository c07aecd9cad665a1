/**
 * What the planner asks of placement (gang policy SchedulingGates, multi-pod groups): a domain for one
 * group incarnation, from the controller's cluster-wide view and its reservation ledger
 * (controller/placement-ledger.ts), or why none has room yet.
 */
import type { BloomDeployment } from '../api/types.js';
import { groupServiceName } from '../groups/names.js';
import { podResources } from '../groups/resources.js';
import { groupShape } from '../groups/shape.js';
import { incarnationKey, podRequests, type Fit, type GroupDemand } from './capacity.js';

/** Places one incarnation (group, epoch) of the deployment being planned; the same answer for the same incarnation until its pods show it. */
export type Placer = (group: number, epoch: number) => Fit;

/** The pods of one incarnation of a (defaulted) deployment's group, as the capacity view fits them. */
export function groupDemand(bd: BloomDeployment, group: number, epoch: number): GroupDemand {
  const { spec } = bd;
  const namespace = bd.metadata.namespace ?? '';
  const groupKey = groupServiceName(bd.metadata.name ?? '', group);
  return {
    incarnation: incarnationKey(namespace, groupKey, epoch),
    namespace,
    groupKey,
    exclusive: spec.placement.exclusive,
    topologyKey: spec.placement.topologyKey,
    pods: groupShape(spec).pods,
    requests: podRequests({ spec: { containers: [{ name: 'worker', resources: podResources(spec) }] } }),
    primary: spec.worker.gpuResourceName,
    nodeSelector: spec.placement.nodeSelector ?? {},
    tolerations: spec.placement.tolerations ?? [],
  };
}
