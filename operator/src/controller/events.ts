/** Kubernetes Events on BloomDeployments, so `kubectl describe bd` tells what happened. */
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import type { BloomDeployment } from '../api/types.js';
import type { EventSpec } from '../lifecycle/actions.js';
import type { Logger } from '../log.js';

export const EVENT_SOURCE = 'bloom-operator';

export class EventRecorder {
  private readonly core: CoreV1Api;

  constructor(kubeConfig: KubeConfig, private readonly identity: string, private readonly log: Logger) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  /** Best effort: an event that cannot be written is logged, never retried. */
  async emit(bd: BloomDeployment, event: EventSpec): Promise<void> {
    const now = new Date();
    const name = bd.metadata.name!;
    const namespace = bd.metadata.namespace!;
    try {
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: `${name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`, namespace },
          involvedObject: { apiVersion: bd.apiVersion, kind: bd.kind, name, namespace, uid: bd.metadata.uid, resourceVersion: bd.metadata.resourceVersion },
          type: event.type, reason: event.reason, message: event.message,
          firstTimestamp: now, lastTimestamp: now, count: 1,
          source: { component: EVENT_SOURCE }, reportingComponent: EVENT_SOURCE, reportingInstance: this.identity,
        },
      });
    } catch (err) {
      this.log.warn('could not write event', { deployment: `${namespace}/${name}`, reason: event.reason, error: String(err) });
    }
  }
}
