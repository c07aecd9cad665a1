/**
 * Every write the operator makes, in one place: thin wrappers over client-node that
 * make repeated writes harmless (a create that finds the object, a delete that finds
 * nothing) and count failures in the metrics.
 */
import { CoreV1Api, CustomObjectsApi, PatchStrategy, PolicyV1Api, type V1PodDisruptionBudget, setHeaderOptions, type KubeConfig, type V1Pod, type V1Service, type V1ServicePort } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, PLURAL } from '../api/constants.js';
import type { BloomDeployment, BloomDeploymentStatus } from '../api/types.js';
import { GANG_SCHEDULING_GATE } from '../groups/pod.js';
import { recordApiError, type OperatorMetrics } from '../metrics/metrics.js';

export const FIELD_MANAGER = 'bloom-operator';
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

export const statusCode = (err: unknown): number | undefined => (err as { code?: number })?.code;

export class KubeWriter {
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly policy: PolicyV1Api;

  constructor(kubeConfig: KubeConfig, private readonly metrics?: OperatorMetrics) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.policy = kubeConfig.makeApiClient(PolicyV1Api);
  }

  private async call<T>(verb: string, resource: string, fn: () => Promise<T>, tolerate: number[] = []): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      if (tolerate.includes(statusCode(err) ?? -1)) return undefined;
      if (this.metrics) recordApiError(this.metrics, verb, resource, err);
      throw err;
    }
  }

  createPod(pod: V1Pod) {
    return this.call('create', 'pods', () => this.core.createNamespacedPod({ namespace: pod.metadata!.namespace!, body: pod, fieldManager: FIELD_MANAGER }), [409]);
  }

  /** Deletes the pod with this uid (never a newer pod of the same name); force skips the grace period. */
  deletePod(namespace: string, name: string, uid: string, force: boolean) {
    return this.call('delete', 'pods', () => this.core.deleteNamespacedPod({
      name, namespace, body: { preconditions: { uid }, ...(force ? { gracePeriodSeconds: 0 } : {}) }, ...(force ? { gracePeriodSeconds: 0 } : {}),
    }), [404, 409]);
  }

  /**
   * Lifts the operator's gang gate, and only it: a JSON patch that tests the gate's name at its index
   * and removes that entry, so other controllers' gates (Kueue, policy webhooks) stay. A stale index
   * fails the test (422) and the reconcile is retried on a fresh cache. Gates can only be removed, so
   * this is the only patch ever made to a pod.
   */
  ungatePod(namespace: string, name: string, gateIndex: number) {
    const path = `/spec/schedulingGates/${gateIndex}`;
    const body = [{ op: 'test', path: `${path}/name`, value: GANG_SCHEDULING_GATE }, { op: 'remove', path }];
    return this.call('patch', 'pods', () => this.core.patchNamespacedPod({ name, namespace, body, fieldManager: FIELD_MANAGER }, jsonPatch), [404]);
  }

  createService(service: V1Service) {
    return this.call('create', 'services', () => this.core.createNamespacedService({ namespace: service.metadata!.namespace!, body: service, fieldManager: FIELD_MANAGER }), [409]);
  }

  deleteService(namespace: string, name: string) {
    return this.call('delete', 'services', () => this.core.deleteNamespacedService({ name, namespace }), [404]);
  }

  patchServiceSpec(namespace: string, name: string, resourceVersion: string, spec: { selector: Record<string, string>; ports: V1ServicePort[] }) {
    const body = { metadata: { resourceVersion }, spec };
    return this.call('patch', 'services', () => this.core.patchNamespacedService({ name, namespace, body, fieldManager: FIELD_MANAGER }, mergePatch));
  }

  /** Merge-patches annotations (null removes one) and optionally the selector; the resourceVersion makes it fail on a stale read. */
  patchServiceRecord(namespace: string, name: string, resourceVersion: string, annotations: Record<string, string | null>, selector?: Record<string, string>) {
    const body = { metadata: { resourceVersion, annotations }, ...(selector ? { spec: { selector } } : {}) };
    return this.call('patch', 'services', () => this.core.patchNamespacedService({ name, namespace, body, fieldManager: FIELD_MANAGER }, mergePatch));
  }

  createPdb(pdb: V1PodDisruptionBudget) {
    return this.call('create', 'poddisruptionbudgets', () => this.policy.createNamespacedPodDisruptionBudget({ namespace: pdb.metadata!.namespace!, body: pdb, fieldManager: FIELD_MANAGER }), [409]);
  }

  deletePdb(namespace: string, name: string) {
    return this.call('delete', 'poddisruptionbudgets', () => this.policy.deleteNamespacedPodDisruptionBudget({ name, namespace }), [404]);
  }

  /** Writes status through the status subresource, guarded by the resourceVersion the status was computed from. */
  replaceStatus(bd: BloomDeployment, status: BloomDeploymentStatus) {
    const body = { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: bd.kind ?? 'BloomDeployment', metadata: bd.metadata, spec: bd.spec, status };
    return this.call('update', 'bloomdeployments/status', () => this.custom.replaceNamespacedCustomObjectStatus({
      group: API_GROUP, version: API_VERSION, plural: PLURAL, namespace: bd.metadata.namespace!, name: bd.metadata.name!, body, fieldManager: FIELD_MANAGER,
    }));
  }
}
