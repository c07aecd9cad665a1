// The thin I/O of leader election: read, create and replace one
// coordination.k8s.io/v1 Lease through client-node's CoordinationV1Api, and
// convert between the Lease object and the pure LeaseRecord.
import { CoordinationV1Api, KubeConfig, Observable, V1MicroTime } from '@kubernetes/client-node';
import type { ConfigurationOptions, RequestContext, ResponseContext, V1Lease } from '@kubernetes/client-node';
import type { LeaseRecord } from './decision.js';

/** A Lease as last read: the record, the resourceVersion to replace it with, and the object itself. */
export interface StoredLease {
  record: LeaseRecord;
  resourceVersion: string;
  /** The Lease as read, so a replace keeps its metadata and other spec fields. */
  object?: V1Lease;
}

/**
 * What the LeaderElector needs from the API server. `replace` must fail with
 * a ConflictError when resourceVersion is stale (HTTP 409).
 */
export interface LeaseClient {
  get(signal: AbortSignal): Promise<StoredLease | null>;
  create(record: LeaseRecord, signal: AbortSignal): Promise<StoredLease>;
  replace(prev: StoredLease, record: LeaseRecord, signal: AbortSignal): Promise<StoredLease>;
}

/** Optimistic-concurrency failure: someone else wrote the lease first (409), or created it first. */
export class ConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

/** HTTP status of a client-node ApiException (or anything with a numeric `code`/`statusCode`). */
export function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

/** Epoch ms of a Lease time field: client-node 1.4.0 returns MicroTime fields as strings. */
export function toMillis(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'string' || typeof v === 'number') {
    const ms = new Date(v).getTime();
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

export function leaseToRecord(lease: V1Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  const record: LeaseRecord = {
    holderIdentity: spec.holderIdentity ?? '',
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    leaseTransitions: spec.leaseTransitions ?? 0,
  };
  const acquireTime = toMillis(spec.acquireTime);
  const renewTime = toMillis(spec.renewTime);
  if (acquireTime !== undefined) record.acquireTime = acquireTime;
  if (renewTime !== undefined) record.renewTime = renewTime;
  return record;
}

/** The Lease spec of a record. MicroTime serialises with 6 fractional digits, as the API server requires. */
export function recordToSpec(record: LeaseRecord): NonNullable<V1Lease['spec']> {
  return {
    holderIdentity: record.holderIdentity,
    leaseDurationSeconds: record.leaseDurationSeconds,
    leaseTransitions: record.leaseTransitions,
    ...(record.acquireTime !== undefined ? { acquireTime: new V1MicroTime(record.acquireTime) } : {}),
    ...(record.renewTime !== undefined ? { renewTime: new V1MicroTime(record.renewTime) } : {}),
  };
}

function stored(lease: V1Lease): StoredLease {
  return { record: leaseToRecord(lease), resourceVersion: lease.metadata?.resourceVersion ?? '', object: lease };
}

/** Request options that abort the HTTP request when `signal` fires. */
function withSignal(signal: AbortSignal): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (ctx: RequestContext) => {
          ctx.setSignal(signal);
          return new Observable(Promise.resolve(ctx));
        },
        post: (ctx: ResponseContext) => new Observable(Promise.resolve(ctx)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/** LeaseClient on CoordinationV1Api. */
export class KubeLeaseClient implements LeaseClient {
  private readonly api: CoordinationV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
    private readonly name: string,
  ) {
    this.api = kubeConfig.makeApiClient(CoordinationV1Api);
  }

  async get(signal: AbortSignal): Promise<StoredLease | null> {
    try {
      return stored(await this.api.readNamespacedLease({ name: this.name, namespace: this.namespace }, withSignal(signal)));
    } catch (err) {
      if (httpStatus(err) === 404) return null;
      throw err;
    }
  }

  async create(record: LeaseRecord, signal: AbortSignal): Promise<StoredLease> {
    const body: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.name, namespace: this.namespace },
      spec: recordToSpec(record),
    };
    try {
      return stored(await this.api.createNamespacedLease({ namespace: this.namespace, body }, withSignal(signal)));
    } catch (err) {
      if (httpStatus(err) === 409) throw new ConflictError(`lease ${this.namespace}/${this.name} was created by another candidate`);
      throw err;
    }
  }

  async replace(prev: StoredLease, record: LeaseRecord, signal: AbortSignal): Promise<StoredLease> {
    const { resourceVersion } = prev;
    const body: V1Lease = {
      ...prev.object,
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...prev.object?.metadata, name: this.name, namespace: this.namespace, resourceVersion },
      // Only the leader-election fields change; others (e.g. strategy) are kept.
      spec: { ...prev.object?.spec, ...recordToSpec(record) },
    };
    try {
      return stored(
        await this.api.replaceNamespacedLease({ name: this.name, namespace: this.namespace, body }, withSignal(signal)),
      );
    } catch (err) {
      if (httpStatus(err) === 409) {
        throw new ConflictError(`lease ${this.namespace}/${this.name} changed since resourceVersion ${resourceVersion}`);
      }
      throw err;
    }
  }
}
