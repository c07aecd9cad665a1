/**
 * Kubernetes Events on BloomDeployments, so `kubectl describe bd` tells what happened. Repeats are
 * aggregated as client-go's EventCorrelator does: the same (object, type, reason, message) within
 * the aggregation window bumps count, lastTimestamp and series of one Event instead of creating
 * another object.
 */
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import type { BloomDeployment } from '../api/types.js';
import type { EventSpec } from '../lifecycle/actions.js';
import type { Logger } from '../log.js';
import { statusCode } from './kube-writer.js';

export const EVENT_SOURCE = 'bloom-operator';
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

interface Seen { name: string; count: number; last: number }

export interface EventRecorderOptions {
  /** Repeats further apart than this start a new Event (client-go: 10 minutes). */
  windowMs?: number;
  /** Distinct events remembered for aggregation (client-go: 4096). */
  maxKeys?: number;
  now?: () => number;
}

export class EventRecorder {
  private readonly core: CoreV1Api;
  private readonly seen = new Map<string, Seen>();
  private readonly windowMs: number;
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(kubeConfig: KubeConfig, private readonly identity: string, private readonly log: Logger, options: EventRecorderOptions = {}) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.windowMs = options.windowMs ?? 600_000;
    this.maxKeys = options.maxKeys ?? 4096;
    this.now = options.now ?? Date.now;
  }

  /** Best effort: an event that cannot be written is logged, never retried. */
  async emit(bd: BloomDeployment, event: EventSpec): Promise<void> {
    const name = bd.metadata.name!;
    const namespace = bd.metadata.namespace!;
    const key = [bd.metadata.uid, event.type, event.reason, event.message].join('\u0000');
    const now = this.now();
    try {
      const seen = this.seen.get(key);
      if (seen && now - seen.last < this.windowMs && await this.bump(namespace, seen, now)) return;
      const eventName = `${name}.${now.toString(16)}${randomBytes(3).toString('hex')}`;
      const time = new Date(now);
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: eventName, namespace },
          involvedObject: { apiVersion: bd.apiVersion, kind: bd.kind, name, namespace, uid: bd.metadata.uid, resourceVersion: bd.metadata.resourceVersion },
          type: event.type, reason: event.reason, message: event.message,
          firstTimestamp: time, lastTimestamp: time, count: 1,
          source: { component: EVENT_SOURCE }, reportingComponent: EVENT_SOURCE, reportingInstance: this.identity,
        },
      });
      this.remember(key, { name: eventName, count: 1, last: now });
    } catch (err) {
      this.log.warn('could not write event', { deployment: `${namespace}/${name}`, reason: event.reason, error: String(err) });
    }
  }

  /** Counts one more occurrence on the existing Event; false when it is gone (expired) and must be created anew. */
  private async bump(namespace: string, seen: Seen, now: number): Promise<boolean> {
    const count = seen.count + 1;
    const time = new Date(now).toISOString();
    try {
      await this.core.patchNamespacedEvent({ name: seen.name, namespace, body: { count, lastTimestamp: time, series: { count, lastObservedTime: new Date(now).toISOString().replace('Z', '000Z') } } }, mergePatch);
    } catch (err) {
      if (statusCode(err) === 404) return false;
      throw err;
    }
    seen.count = count;
    seen.last = now;
    return true;
  }

  private remember(key: string, seen: Seen): void {
    this.seen.delete(key);
    this.seen.set(key, seen);
    if (this.seen.size > this.maxKeys) this.seen.delete(this.seen.keys().next().value!);
  }
}
