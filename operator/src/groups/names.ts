/**
 * Deterministic names of everything a BloomDeployment owns. Deterministic names make a duplicate
 * create harmless (AlreadyExists) and guard against stale informer caches.
 */

/** MASTER_ADDR of a single-pod group: the pod's own loopback (its ranks rendezvous inside the pod). */
export const LOOPBACK_MASTER_ADDRESS = '127.0.0.1';

/** Headless Service of one group; also the pods' `subdomain`. */
export function groupServiceName(bd: string, group: number): string {
  return `${bd}-g${group}`;
}

/** Pod `hostname` of one pod of a group: stable across epochs, so MASTER_ADDR is stable too. */
export function podHostname(bd: string, group: number, pod: number): string {
  return `${bd}-g${group}-p${pod}`;
}

/** Name of one pod (index `pod`, NODE_RANK) of one incarnation (epoch) of its group. */
export function groupPodName(bd: string, group: number, pod: number, epoch: number): string {
  return `${bd}-g${group}-p${pod}-e${epoch}`;
}

/** One incarnation (epoch) of a group: its Kueue pod group and its scheduling.k8s.io PodGroup. */
export function incarnationName(bd: string, group: number, epoch: number): string {
  return `${bd}-g${group}-e${epoch}`;
}

/** ClusterIP Service clients call: routes to pod 0 (global rank 0) of every ready group. */
export function clientServiceName(bd: string): string {
  return bd;
}

/**
 * MASTER_ADDR of a group: the loopback for a single-pod group; otherwise the DNS name of pod 0,
 * <bd>-g<group>-p0.<bd>-g<group>.<namespace>.svc.<clusterDomain>.
 */
export function masterAddress(bd: string, group: number, namespace: string, clusterDomain: string, podsPerGroup: number): string {
  if (podsPerGroup === 1) return LOOPBACK_MASTER_ADDRESS;
  return `${podHostname(bd, group, 0)}.${groupServiceName(bd, group)}.${namespace}.svc.${clusterDomain}`;
}
