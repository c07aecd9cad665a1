/**
 * The controller-wide reservation of topology domains: every worker places through this one ledger,
 * so groups of different deployments reconciled at once never take the same free domain. A fit and
 * its reservation happen in one synchronous step (reconciles interleave only at their awaits); a
 * reservation stands until the pod cache shows the placement (its pods pinned or bound, see
 * lifecycle/capacity.ts) and expires after ttlMs should the write never land.
 */
import { fitGroup, type ClusterView, type Fit, type GroupDemand, type Reservation } from '../lifecycle/capacity.js';

export class PlacementLedger {
  private readonly held = new Map<string, { reservation: Reservation; at: number }>();

  constructor(private readonly ttlMs = 60_000, private readonly now: () => number = Date.now) {}

  /** The domain for `demand` (reserved for it), or why none fits; the same domain again while its reservation stands. */
  place(view: Omit<ClusterView, 'reservations'>, demand: GroupDemand): Fit {
    const now = this.now();
    for (const [key, entry] of this.held) if (now - entry.at >= this.ttlMs) this.held.delete(key);
    const own = this.held.get(demand.incarnation);
    if (own) return { domain: own.reservation.value };
    const fit = fitGroup({ ...view, reservations: [...this.held.values()].map((e) => e.reservation) }, demand);
    if ('domain' in fit) {
      const { incarnation, namespace, groupKey, exclusive, topologyKey: key, pods, requests } = demand;
      this.held.set(incarnation, { reservation: { incarnation, namespace, groupKey, exclusive, key, value: fit.domain, pods, requests }, at: now });
    }
    return fit;
  }

}
