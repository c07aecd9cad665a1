/**
 * What the informers keep of each object (controller-runtime's cache transforms): the fields the
 * controller reads, not the megabytes it never does. Each function takes a freshly decoded object,
 * shared with no one, and trims it in place.
 */
import type { KubernetesObject, V1Container, V1Node, V1Pod } from '@kubernetes/client-node';

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** Every object: managedFields (a third of a pod) and kubectl's last-applied copy of the object. */
export function forCache<T extends KubernetesObject>(o: T): T {
  const meta = o.metadata;
  if (meta) {
    delete meta.managedFields;
    if (meta.annotations && LAST_APPLIED in meta.annotations) delete meta.annotations[LAST_APPLIED];
  }
  return o;
}

const resourcesOnly = (c: V1Container): V1Container => ({ name: c.name, ...(c.resources ? { resources: c.resources } : {}) });
/** Requests and limits, without the claims: what the scheduler counts. */
const requestsOnly = (c: V1Container): V1Container => {
  const { requests, limits } = c.resources ?? {};
  return { name: c.name, resources: { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) } };
};

/**
 * Rank pods: their containers keep only name and resources (placement counts the GPUs); env, probes,
 * mounts and volumes are the operator's own rendering, which it never reads back (the revision label
 * says which spec a pod has).
 */
export function podForCache(pod: V1Pod): V1Pod {
  const spec = pod.spec;
  if (spec) {
    spec.containers = spec.containers.map(resourcesOnly);
    if (spec.initContainers) spec.initContainers = spec.initContainers.map(resourcesOnly);
    delete spec.volumes;
  }
  return pod;
}

/**
 * Nodes: what lifecycle/observe.ts nodeView reads (labels, taints, unschedulable, the Ready
 * condition, allocatable); a real node's status also lists every image it holds (tens of KB).
 */
export function nodeForCache(node: V1Node): V1Node {
  const status = node.status;
  if (status) {
    node.status = {
      ...(status.conditions ? { conditions: status.conditions.filter((c) => c.type === 'Ready') } : {}),
      ...(status.allocatable ? { allocatable: status.allocatable } : {}),
    };
  }
  return node;
}

/**
 * Every bound pod of the cluster (the placement view): its node, phase and what it requests, nothing
 * else; on a shared cluster these are most of the cache.
 */
export function podUsageForCache(pod: V1Pod): V1Pod {
  const { name, namespace, uid, resourceVersion, deletionTimestamp } = pod.metadata ?? {};
  const spec = pod.spec;
  return {
    metadata: { name, namespace, uid, resourceVersion, ...(deletionTimestamp ? { deletionTimestamp } : {}) },
    spec: {
      containers: (spec?.containers ?? []).map(requestsOnly),
      ...(spec?.initContainers ? { initContainers: spec.initContainers.map(requestsOnly) } : {}),
      ...(spec?.overhead ? { overhead: spec.overhead } : {}),
      ...(spec?.nodeName ? { nodeName: spec.nodeName } : {}),
    },
    ...(pod.status?.phase ? { status: { phase: pod.status.phase } } : {}),
  };
}
