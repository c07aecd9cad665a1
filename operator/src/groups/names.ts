/**
 * Deterministic names of everything a BloomDeployment owns. Deterministic names make a duplicate
 * create harmless (AlreadyExists) and guard against stale informer caches.
 */

/** Headless Service of one group; also the pods' `subdomain`. */
export function groupServiceName(bd: string, group: number): string {
  return `${bd}-g${group}`;
}

/** Pod `hostname` of one rank: stable across epochs, so MASTER_ADDR is stable too. */
export function rankHostname(bd: string, group: number, rank: number): string {
  return `${bd}-g${group}-r${rank}`;
}

/** Pod name of one rank in one incarnation (epoch) of its group. */
export function rankPodName(bd: string, group: number, rank: number, epoch: number): string {
  return `${bd}-g${group}-r${rank}-e${epoch}`;
}

/** ClusterIP Service clients call: routes to the rank 0 of every ready group. */
export function clientServiceName(bd: string): string {
  return bd;
}

/** DNS name of rank 0 of a group (MASTER_ADDR): <bd>-g<group>-r0.<bd>-g<group>.<namespace>.svc.<clusterDomain>. */
export function masterAddress(bd: string, group: number, namespace: string, clusterDomain: string): string {
  return `${rankHostname(bd, group, 0)}.${groupServiceName(bd, group)}.${namespace}.svc.${clusterDomain}`;
}
