/**
 * Create/delete expectations, as the ReplicaSet and Job controllers keep them: after a write
 * lands, the key is not planned again until the informers show its effect, so a cache that lags
 * behind our own writes never causes a duplicate create, a second delete, or a create for an
 * epoch the record has already left. Unlike client-go's counters, each expectation names its
 * object and is checked against the cache's state, not counted from events, so a re-list (which
 * replaces the store) satisfies it as well as a watch event; an event also satisfies it on its own,
 * so an object created and gone again between two reconciles is not awaited. An expectation the cache never
 * confirms expires after ttlMs (client-go: 5 minutes) and the key is planned anyway.
 */
export type Resource = 'pods' | 'services' | 'poddisruptionbudgets' | 'networkpolicies';

export type Expectation =
  /** A created object is in the cache; for a patch, with another resourceVersion than before it. */
  | { kind: 'present'; resource: Resource; name: string; notResourceVersion?: string }
  /** A deleted object (this uid) is gone from the cache or terminating. */
  | { kind: 'absent'; resource: Resource; name: string; uid: string };

/** What the cache holds now for one object name (undefined: not there). */
export type CacheLookup = (resource: Resource, name: string) => { uid: string; resourceVersion: string; terminating: boolean } | undefined;

export function isSatisfied(e: Expectation, lookup: CacheLookup): boolean {
  const cached = lookup(e.resource, e.name);
  if (e.kind === 'absent') return !cached || cached.uid !== e.uid || cached.terminating;
  if (e.notResourceVersion === undefined) return cached !== undefined;
  // A patched object that is gone was deleted after the patch: nothing left to wait for.
  return !cached || cached.resourceVersion !== e.notResourceVersion;
}

type Seen = { uid: string; resourceVersion: string; terminating: boolean };

export class Expectations {
  private readonly pending = new Map<string, { items: Expectation[]; expires: number }>();
  /** The last informer event of each object (undefined: deleted), so a write whose events came before its response still counts. */
  private readonly recent = new Map<string, { at: number; seen: Seen | undefined }>();

  constructor(private readonly ttlMs = 60_000, private readonly clock: () => number = Date.now) {}

  /** Expects the writes that landed; `since` is when they were made (events after it already count). */
  expect(key: string, items: readonly Expectation[], now: number, since = now): void {
    const open = items.filter((e) => {
      const last = this.recent.get(recentKey(key, e.resource, e.name));
      if (!last || last.at < since) return true;
      // An event of a created object, even its deletion, shows the create landed.
      return !(e.kind === 'present' && e.notResourceVersion === undefined) && !isSatisfied(e, () => last.seen);
    });
    if (open.length === 0) return;
    const entry = this.pending.get(key);
    this.pending.set(key, { items: [...(entry?.items ?? []), ...open], expires: now + this.ttlMs });
  }

  /**
   * Drops the expectations of the key that the cache confirms; true when none is left (or they
   * expired). The unconfirmed ones are returned for logging.
   */
  check(key: string, lookup: CacheLookup, now: number): { satisfied: boolean; waiting: Expectation[] } {
    const entry = this.pending.get(key);
    if (!entry) return { satisfied: true, waiting: [] };
    const waiting = entry.items.filter((e) => !isSatisfied(e, lookup));
    if (waiting.length === 0 || now >= entry.expires) {
      this.pending.delete(key);
      return { satisfied: true, waiting };
    }
    entry.items = waiting;
    return { satisfied: false, waiting };
  }

  /** An informer event for an object of the key (`seen` undefined: deleted): drops the expectations it satisfies. */
  observe(key: string, resource: Resource, name: string, seen: Seen | undefined): void {
    const now = this.clock();
    this.recent.set(recentKey(key, resource, name), { at: now, seen });
    if (this.recent.size > 4096) for (const [k, v] of this.recent) if (now - v.at > this.ttlMs) this.recent.delete(k);
    const entry = this.pending.get(key);
    if (!entry) return;
    entry.items = entry.items.filter((e) => !(e.resource === resource && e.name === name
      && (isSatisfied(e, () => seen) || (e.kind === 'present' && e.notResourceVersion === undefined))));
    if (entry.items.length === 0) this.pending.delete(key);
  }

  /** When the key's expectations expire (to look again then even without an event). */
  expiry(key: string): number | undefined { return this.pending.get(key)?.expires; }

  forget(key: string): void { this.pending.delete(key); }
}

const recentKey = (key: string, resource: Resource, name: string) => `${key}\u0000${resource}\u0000${name}`;
