/**
 * Every write the operator makes, in one place: thin wrappers over client-node that
 * make repeated writes harmless (a create that finds its own object, a delete that finds
 * nothing) and count failures in the metrics. A create that finds an object of the same
 * name it does not control is an error (ForeignObjectError), never taken as success.
 */
import { CoreV1Api, CustomObjectsApi, PatchStrategy, PolicyV1Api, type ConfigurationOptions, type KubernetesObject, type ObservableMiddleware, type V1PodDisruptionBudget, setHeaderMiddleware, setHeaderOptions, type KubeConfig, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, PLURAL } from '../api/constants.js';
import type { BloomDeployment, BloomDeploymentStatus } from '../api/types.js';
import { NETWORK_POLICY_RESOURCE, type NetworkPolicy } from '../groups/network-policy.js';
import { POD_GROUP_API, type PodGroup } from '../groups/gang.js';
import { domainAffinity, GANG_SCHEDULING_GATE, GROUP_READY_CONDITION } from '../groups/pod.js';
import { recordApiError, type OperatorMetrics } from '../metrics/metrics.js';

export const FIELD_MANAGER = 'bloom-operator';
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
const strategicMergePatch = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
// The body is serialized as JSON, which is YAML: the apiserver takes it as an apply configuration.
const serverSideApply = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

/**
 * Sends `body` as JSON as it is: client-node's typed serializer drops the fields its models lack
 * (Pod spec.schedulingGroup of Kubernetes 1.35+). The request's Content-Type stays application/json.
 */
function verbatimBody(body: unknown): ConfigurationOptions {
  const json = setHeaderMiddleware('Content-Type', 'application/json');
  const middleware: ObservableMiddleware = { pre: (request) => { request.setBody(JSON.stringify(body)); return json.pre(request); }, post: (response) => json.post(response) };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

export const statusCode = (err: unknown): number | undefined => (err as { code?: number })?.code;

/** An object with the name the operator wanted exists and is controlled by someone else. */
export class ForeignObjectError extends Error {
  readonly code = 409;
  constructor(resource: string, name: string, owner: string) {
    super(`${resource} ${name} already exists and is not controlled by ${owner}`);
  }
}

const controllerUid = (o: KubernetesObject | undefined) => o?.metadata?.ownerReferences?.find((r) => r.controller)?.uid;
const controllerOf = (o: KubernetesObject) => {
  const ref = o.metadata?.ownerReferences?.find((r) => r.controller);
  return ref ? `${ref.kind} ${ref.name}` : 'this operator';
};

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

  /** Creates `desired`; on 409 reads the existing object and succeeds only if the same controller owns it. */
  private async create<T extends KubernetesObject>(resource: string, desired: T, create: () => Promise<T>, read: () => Promise<T>): Promise<void> {
    try {
      await this.call('create', resource, create);
    } catch (err) {
      if (statusCode(err) !== 409) throw err;
      const existing = await this.call('get', resource, read);
      if (controllerUid(existing) !== controllerUid(desired)) {
        const foreign = new ForeignObjectError(resource, desired.metadata?.name ?? '', controllerOf(desired));
        if (this.metrics) recordApiError(this.metrics, 'create', resource, foreign);
        throw foreign;
      }
    }
  }

  createPod(pod: V1Pod) {
    const { name, namespace } = pod.metadata as { name: string; namespace: string };
    return this.create('pods', pod, () => this.core.createNamespacedPod({ namespace, body: pod, fieldManager: FIELD_MANAGER }, verbatimBody(pod)), () => this.core.readNamespacedPod({ name, namespace }));
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
  ungatePod(namespace: string, name: string, gateIndex: number, domain?: { key: string; value: string }) {
    const path = `/spec/schedulingGates/${gateIndex}`;
    const body: object[] = [{ op: 'test', path: `${path}/name`, value: GANG_SCHEDULING_GATE }, { op: 'remove', path }];
    // A multi-pod group's pods always carry affinity (their pod affinity), never node affinity of their own.
    if (domain) body.push({ op: 'add', path: '/spec/affinity/nodeAffinity', value: domainAffinity(domain.key, domain.value) });
    return this.call('patch', 'pods', () => this.core.patchNamespacedPod({ name, namespace, body, fieldManager: FIELD_MANAGER }, jsonPatch), [404]);
  }

  /** Sets the group-ready condition in the pod's status; a strategic merge by condition type leaves the kubelet's conditions alone. */
  setGroupReady(namespace: string, name: string, ready: boolean, message: string) {
    const condition = { type: GROUP_READY_CONDITION, status: ready ? 'True' : 'False', reason: ready ? 'GroupReady' : 'GroupNotReady', message, lastTransitionTime: new Date().toISOString() };
    return this.call('patch', 'pods/status', () => this.core.patchNamespacedPodStatus({ name, namespace, body: { status: { conditions: [condition] } }, fieldManager: FIELD_MANAGER }, strategicMergePatch), [404]);
  }

  createService(service: V1Service) {
    const { name, namespace } = service.metadata as { name: string; namespace: string };
    return this.create('services', service, () => this.core.createNamespacedService({ namespace, body: service, fieldManager: FIELD_MANAGER }), () => this.readService(namespace, name));
  }

  readService(namespace: string, name: string) {
    return this.core.readNamespacedService({ name, namespace });
  }

  /** Server-side apply of an owned Service's configuration; forced, as a controller owns its fields. */
  applyService(service: V1Service) {
    const { name, namespace } = service.metadata as { name: string; namespace: string };
    return this.call('patch', 'services', () => this.core.patchNamespacedService({ name, namespace, body: service, fieldManager: FIELD_MANAGER, force: true }, serverSideApply));
  }

  /** Deletes the Service with this uid (a 409 means it is already another object: nothing of ours left). */
  deleteService(namespace: string, name: string, uid: string) {
    return this.call('delete', 'services', () => this.core.deleteNamespacedService({ name, namespace, body: { preconditions: { uid } } }), [404, 409]);
  }

  /** Merge-patches annotations (null removes one) and optionally the selector; the resourceVersion makes it fail on a stale read. */
  patchServiceRecord(namespace: string, name: string, resourceVersion: string, annotations: Record<string, string | null>, selector?: Record<string, string>) {
    const body = { metadata: { resourceVersion, annotations }, ...(selector ? { spec: { selector } } : {}) };
    return this.call('patch', 'services', () => this.core.patchNamespacedService({ name, namespace, body, fieldManager: FIELD_MANAGER }, mergePatch));
  }

  /** Server-side apply of an incarnation's PodGroup (forced: the operator owns it whole). */
  applyPodGroup(podGroup: PodGroup) {
    const { name, namespace } = podGroup.metadata as { name: string; namespace: string };
    const { group, version, plural } = POD_GROUP_API;
    return this.call('patch', plural, () => this.custom.patchNamespacedCustomObject({ group, version, plural, namespace, name, body: podGroup, fieldManager: FIELD_MANAGER, force: true }, serverSideApply));
  }

  deletePodGroup(namespace: string, name: string) {
    const { group, version, plural } = POD_GROUP_API;
    return this.call('delete', plural, () => this.custom.deleteNamespacedCustomObject({ group, version, plural, namespace, name }), [404]);
  }

  createPdb(pdb: V1PodDisruptionBudget) {
    const { name, namespace } = pdb.metadata as { name: string; namespace: string };
    return this.create('poddisruptionbudgets', pdb, () => this.policy.createNamespacedPodDisruptionBudget({ namespace, body: pdb, fieldManager: FIELD_MANAGER }),
      () => this.policy.readNamespacedPodDisruptionBudget({ name, namespace }));
  }

  applyPdb(pdb: V1PodDisruptionBudget) {
    const { name, namespace } = pdb.metadata as { name: string; namespace: string };
    return this.call('patch', 'poddisruptionbudgets', () => this.policy.patchNamespacedPodDisruptionBudget({ name, namespace, body: pdb, fieldManager: FIELD_MANAGER, force: true }, serverSideApply));
  }

  deletePdb(namespace: string, name: string, uid: string) {
    return this.call('delete', 'poddisruptionbudgets', () => this.policy.deleteNamespacedPodDisruptionBudget({ name, namespace, body: { preconditions: { uid } } }), [404, 409]);
  }

  /** NetworkPolicies travel as plain JSON (see NetworkPolicy): through the generic object calls, which do not translate fields. */
  createNetworkPolicy(policy: NetworkPolicy) {
    const { name, namespace } = policy.metadata as { name: string; namespace: string };
    return this.create('networkpolicies', policy,
      async () => (await this.custom.createNamespacedCustomObject({ ...NETWORK_POLICY_RESOURCE, namespace, body: policy, fieldManager: FIELD_MANAGER })) as NetworkPolicy,
      async () => (await this.custom.getNamespacedCustomObject({ ...NETWORK_POLICY_RESOURCE, namespace, name })) as NetworkPolicy);
  }

  applyNetworkPolicy(policy: NetworkPolicy) {
    const { name, namespace } = policy.metadata as { name: string; namespace: string };
    return this.call('patch', 'networkpolicies', () => this.custom.patchNamespacedCustomObject({ ...NETWORK_POLICY_RESOURCE, namespace, name, body: policy, fieldManager: FIELD_MANAGER, force: true }, serverSideApply));
  }

  deleteNetworkPolicy(namespace: string, name: string, uid: string) {
    return this.call('delete', 'networkpolicies', () => this.custom.deleteNamespacedCustomObject({ ...NETWORK_POLICY_RESOURCE, namespace, name, body: { preconditions: { uid } } }), [404, 409]);
  }

  /** Writes status through the status subresource, guarded by the resourceVersion the status was computed from. */
  replaceStatus(bd: BloomDeployment, status: BloomDeploymentStatus) {
    const body = { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: bd.kind ?? 'BloomDeployment', metadata: bd.metadata, spec: bd.spec, status };
    return this.call('update', 'bloomdeployments/status', () => this.custom.replaceNamespacedCustomObjectStatus({
      group: API_GROUP, version: API_VERSION, plural: PLURAL, namespace: bd.metadata.namespace!, name: bd.metadata.name!, body, fieldManager: FIELD_MANAGER,
    }));
  }
}
