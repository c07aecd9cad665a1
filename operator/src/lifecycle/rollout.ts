/**
 * Which groups to add and remove, in groups, as a Deployment does with pods: at most
 * replicas + maxSurge groups exist, at least replicas - maxUnavailable stay Ready while
 * outdated groups (older revision, or ranks on a cordoned node) are replaced, and scale
 * down removes the highest indices first.
 */
export interface GroupSummary {
  index: number;
  ready: boolean;
  upToDate: boolean;
}

export interface RolloutInput {
  groups: readonly GroupSummary[];
  replicas: number;
  maxSurge: number;
  maxUnavailable: number;
  /** Indices that cannot be used for a new group yet (pods of a removed group still terminating). */
  busyIndices: ReadonlySet<number>;
}

export interface RolloutPlan {
  create: number[];
  remove: number[];
}

export function planRollout({ groups, replicas, maxSurge, maxUnavailable, busyIndices }: RolloutInput): RolloutPlan {
  const minAvailable = Math.max(0, replicas - maxUnavailable);
  const remove: number[] = [];
  let kept = [...groups];
  const drop = (index: number) => {
    remove.push(index);
    kept = kept.filter((g) => g.index !== index);
  };

  const upToDate = kept.filter((g) => g.upToDate).sort((a, b) => b.index - a.index);
  for (const g of upToDate.slice(0, Math.max(0, upToDate.length - replicas))) drop(g.index);

  let ready = kept.filter((g) => g.ready).length;
  const outdated = kept.filter((g) => !g.upToDate).sort((a, b) => Number(a.ready) - Number(b.ready) || b.index - a.index);
  for (const g of outdated) {
    if (!g.ready) drop(g.index);
    else if (ready - 1 >= minAvailable) {
      drop(g.index);
      ready--;
    }
  }

  const create: number[] = [];
  const used = new Set([...groups.map((g) => g.index), ...busyIndices]);
  let total = kept.length;
  let current = kept.filter((g) => g.upToDate).length;
  for (let index = 0; current < replicas && total < replicas + maxSurge; index++) {
    if (used.has(index)) continue;
    create.push(index);
    used.add(index);
    total++;
    current++;
  }
  return { create, remove };
}
