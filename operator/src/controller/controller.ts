/**
 * The BloomDeployment controller: informers on BloomDeployments and on the pods,
 * Services, budgets and nodes they depend on feed one work queue keyed namespace/name;
 * workers reconcile keys one at a time each (never one key twice at once), run
 * the pure planDeployment, and execute its writes. Level-triggered: every
 * reconcile starts from the caches, so an unchanged deployment costs no write.
 * Nothing is planned before every informer has completed a LIST, nor while the
 * caches have not yet shown this controller's own last writes (expectations).
 */
import { CoreV1Api, CustomObjectsApi, PolicyV1Api, type V1PodDisruptionBudget, type KubeConfig, type KubernetesListObject, type KubernetesObject, type V1Node, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, PLURAL } from '../api/constants.js';
import { withDefaults } from '../api/defaults.js';
import type { BloomDeployment } from '../api/types.js';
import { LABELS } from '../groups/labels.js';
import { NETWORK_POLICY_RESOURCE, type NetworkPolicy } from '../groups/network-policy.js';
import { canonicalJson } from '../groups/revision.js';
import type { Action } from '../lifecycle/actions.js';
import { podRequests, type ClusterView } from '../lifecycle/capacity.js';
import { nodeView, type NodeView, type NodeViews } from '../lifecycle/observe.js';
import { groupDemand, type Placer } from '../lifecycle/placement.js';
import { planDeployment } from '../lifecycle/plan.js';
import { withWriteFailures, type WriteFailure } from '../lifecycle/status.js';
import type { Logger } from '../log.js';
import { countGroupPhases, forgetDeployment, recordGroupRecreations, recordWriteFailure, setGroupPhases, setWorkqueueDepth, timeReconcile, type OperatorMetrics } from '../metrics/metrics.js';
import { nodeForCache, podForCache, podUsageForCache } from './cache-transform.js';
import { PlacementLedger } from './placement-ledger.js';
import { EventRecorder } from './events.js';
import { executeScoped } from './execute.js';
import { Expectations, type CacheLookup, type Expectation, type Resource } from './expectations.js';
import { Informer, type InformerEventType } from './informer.js';
import { KubeWriter, statusCode } from './kube-writer.js';
import { WorkQueue } from './queue.js';

/**
 * The default resync: a guard only, since every timer of the lifecycle (back-off, deadlines, grace
 * periods) requeues its deployment itself. A pass reconciles every deployment from the cache, about
 * 1.4 ms of CPU per group: once a minute that was 1.9 CPU s per idle minute at 1000 groups.
 */
const RESYNC_MS = 10 * 60_000;

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** Watch only this namespace (default: all). */
  namespace?: string;
  clusterDomain?: string;
  workers?: number;
  /** Watch nodes to detect lost nodes and cordons (needs cluster-scoped read of nodes). */
  watchNodes?: boolean;
  /** Give every group a PodDisruptionBudget (needs policy/poddisruptionbudgets). */
  manageDisruptionBudgets?: boolean;
  metrics?: OperatorMetrics;
  identity?: string;
  /** Reconcile every deployment at this period even without events (a guard against a missed event; default RESYNC_MS). */
  resyncMs?: number;
  /** start() fails when the informers have not all listed within this time (default 120 s). */
  cacheSyncTimeoutMs?: number;
  /** live() turns false when one reconcile has been running longer than this (default 180 s). */
  stuckReconcileMs?: number;
  /** Informer tuning (tests): LIST/watch back-off and the silent-watch cut. */
  informer?: { backoff?: { initialMs: number; maxMs: number }; idleMs?: number };
  now?: () => number;
}

const key = (namespace: string | undefined, name: string | undefined) => `${namespace ?? ''}/${name ?? ''}`;
const message = (err: unknown) => {
  const e = err as { body?: unknown; message?: string };
  if (typeof e?.body === 'string') {
    try { return (JSON.parse(e.body) as { message?: string }).message ?? e.body; } catch { return e.body; }
  }
  return String(e?.message ?? err);
};

/**
 * A write the API refused (a 4xx: a quota, a policy, a foreign object), as opposed to a transient
 * failure (5xx, 429, the network: only retried, like a refusal that only means the cache was stale).
 * Refusals get a Warning event and ReplicaFailure.
 */
function isRefusal(action: Action, err: unknown): boolean {
  const code = statusCode(err) ?? 0;
  const stale = (code === 409 && action.kind === 'patchRecord') || (code === 422 && action.kind === 'ungatePod');
  return code >= 400 && code < 500 && code !== 429 && !stale;
}

function writeFailure(action: Action, err: unknown): WriteFailure {
  const reason = action.kind.startsWith('create') ? 'FailedCreate' : action.kind.startsWith('delete') ? 'FailedDelete' : 'FailedPatch';
  const target = (() => {
    switch (action.kind) {
      case 'createService': case 'applyService': return `Service ${action.service.metadata?.name}`;
      case 'createPod': return `Pod ${action.pod.metadata?.name}`;
      case 'createPdb': case 'applyPdb': return `PodDisruptionBudget ${action.pdb.metadata?.name}`;
      case 'deletePdb': return `PodDisruptionBudget ${action.name}`;
      case 'createNetworkPolicy': case 'applyNetworkPolicy': return `NetworkPolicy ${action.policy.metadata?.name}`;
      case 'deleteNetworkPolicy': return `NetworkPolicy ${action.name}`;
      case 'deleteService': case 'patchRecord': return `Service ${action.name}`;
      case 'applyPodGroup': return `PodGroup ${action.podGroup.metadata?.name}`;
      case 'deletePodGroup': return `PodGroup ${action.name}`;
      case 'deletePod': case 'ungatePod': case 'setGroupReady': return `Pod ${action.name}`;
    }
  })();
  return { reason, message: `${action.kind} ${target}: ${message(err)}` };
}

/** What the cache must show once a write landed (creates and deletes; applies and gate removals are idempotent). */
function expectationOf(action: Action): Expectation | undefined {
  switch (action.kind) {
    case 'createPod': return { kind: 'present', resource: 'pods', name: action.pod.metadata!.name! };
    case 'createService': return { kind: 'present', resource: 'services', name: action.service.metadata!.name! };
    case 'createPdb': return { kind: 'present', resource: 'poddisruptionbudgets', name: action.pdb.metadata!.name! };
    case 'patchRecord': return { kind: 'present', resource: 'services', name: action.name, notResourceVersion: action.resourceVersion };
    case 'deletePod': return { kind: 'absent', resource: 'pods', name: action.name, uid: action.uid };
    case 'deleteService': return { kind: 'absent', resource: 'services', name: action.name, uid: action.uid };
    case 'deletePdb': return { kind: 'absent', resource: 'poddisruptionbudgets', name: action.name, uid: action.uid };
    case 'createNetworkPolicy': return { kind: 'present', resource: 'networkpolicies', name: action.policy.metadata!.name! };
    case 'deleteNetworkPolicy': return { kind: 'absent', resource: 'networkpolicies', name: action.name, uid: action.uid };
    default: return undefined;
  }
}

export class BloomController {
  private readonly writer: KubeWriter;
  private readonly queue = new WorkQueue();
  private readonly bds: Informer<BloomDeployment>;
  private readonly pods: Informer<V1Pod>;
  private readonly services: Informer<V1Service>;
  private readonly nodes: Informer<V1Node> | undefined;
  /** Every bound pod of the cluster, any workload (with the nodes: the placement view). */
  private readonly boundPods: Informer<V1Pod> | undefined;
  private readonly ledger: PlacementLedger;
  private readonly pdbs: Informer<V1PodDisruptionBudget> | undefined;
  private readonly networkPolicies: Informer<NetworkPolicy>;
  private readonly informers: Array<Informer<KubernetesObject>>;
  private readonly events: EventRecorder;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly expectations: Expectations;
  private workers: Promise<void>[] = [];
  private resync: NodeJS.Timeout | undefined;
  /** Start time of each reconcile in flight (the liveness heartbeat). */
  private readonly inFlight = new Map<string, number>();
  /**
   * Stale-cache guards (the informers lag behind our own writes): pods whose gate this process
   * already lifted (gates are never added back), and the status object each key last wrote,
   * with the resourceVersion it was written over, used until the cache has caught up.
   */
  private readonly ungated = new Set<string>();
  private readonly statusWritten = new Map<string, { over: string; bd: BloomDeployment }>();
  private started = false;

  constructor(private readonly options: ControllerOptions) {
    const { kubeConfig, namespace, log } = options;
    this.log = log;
    this.now = options.now ?? Date.now;
    this.expectations = new Expectations(60_000, this.now);
    this.ledger = new PlacementLedger(60_000, this.now);
    this.writer = new KubeWriter(kubeConfig, options.metrics);
    this.events = new EventRecorder(kubeConfig, options.identity ?? 'bloom-operator', log);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const custom = kubeConfig.makeApiClient(CustomObjectsApi);
    const owned = LABELS.deployment;
    const scope = namespace ? `/namespaces/${namespace}` : '';
    const common = { kubeConfig, log, ...(options.metrics ? { metrics: options.metrics } : {}), ...options.informer };

    this.bds = new Informer<BloomDeployment>({
      ...common, name: 'bloomdeployments', path: `/apis/${API_GROUP}/${API_VERSION}${scope}/${PLURAL}`,
      list: async () => (namespace
        ? await custom.listNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace, plural: PLURAL })
        : await custom.listClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: PLURAL })) as KubernetesListObject<BloomDeployment>,
    });
    this.pods = new Informer<V1Pod>({
      ...common, name: 'pods', path: `/api/v1${scope}/pods`, labelSelector: owned, transform: podForCache,
      list: () => (namespace ? core.listNamespacedPod({ namespace, labelSelector: owned }) : core.listPodForAllNamespaces({ labelSelector: owned })),
    });
    this.services = new Informer<V1Service>({
      ...common, name: 'services', path: `/api/v1${scope}/services`, labelSelector: owned,
      list: () => (namespace ? core.listNamespacedService({ namespace, labelSelector: owned }) : core.listServiceForAllNamespaces({ labelSelector: owned })),
    });
    const byOwnerLabel = (obj: KubernetesObject) => {
      const owner = obj.metadata?.labels?.[owned];
      if (owner) this.enqueue(key(obj.metadata?.namespace, owner));
    };
    /** Events of owned objects also count as observed writes (an object created and deleted between two reconciles). */
    const observing = (resource: Resource) => (obj: KubernetesObject, type: InformerEventType) => {
      const owner = obj.metadata?.labels?.[owned];
      if (owner) {
        const seen = type === 'delete' ? undefined : { uid: obj.metadata?.uid ?? '', resourceVersion: obj.metadata?.resourceVersion ?? '', terminating: !!obj.metadata?.deletionTimestamp };
        this.expectations.observe(key(obj.metadata?.namespace, owner), resource, obj.metadata?.name ?? '', seen);
      }
      byOwnerLabel(obj);
    };
    if (options.manageDisruptionBudgets ?? true) {
      const policy = kubeConfig.makeApiClient(PolicyV1Api);
      this.pdbs = new Informer<V1PodDisruptionBudget>({
        ...common, name: 'poddisruptionbudgets', path: `/apis/policy/v1${scope}/poddisruptionbudgets`, labelSelector: owned,
        list: () => (namespace
          ? policy.listNamespacedPodDisruptionBudget({ namespace, labelSelector: owned })
          : policy.listPodDisruptionBudgetForAllNamespaces({ labelSelector: owned })),
      });
      this.pdbs.onEvent(observing('poddisruptionbudgets'));
    }
    // Listed as plain JSON, the shape of its watch events (client-node's typed list would rename `from`).
    this.networkPolicies = new Informer<NetworkPolicy>({
      ...common, name: 'networkpolicies', path: `/apis/networking.k8s.io/v1${scope}/networkpolicies`, labelSelector: owned,
      list: async () => (namespace
        ? await custom.listNamespacedCustomObject({ ...NETWORK_POLICY_RESOURCE, namespace, labelSelector: owned })
        : await custom.listClusterCustomObject({ ...NETWORK_POLICY_RESOURCE, labelSelector: owned })) as KubernetesListObject<NetworkPolicy>,
    });
    this.networkPolicies.onEvent(observing('networkpolicies'));
    if (options.watchNodes ?? true) {
      this.nodes = new Informer<V1Node>({ ...common, name: 'nodes', path: '/api/v1/nodes', list: () => core.listNode(), transform: nodeForCache });
      // A node's status heartbeat changes nothing the planner reads: only a changed view wakes its groups.
      const seen = new Map<string, string>();
      this.nodes.onEvent((node, type) => {
        const name = node.metadata?.name ?? '';
        const view = type === 'delete' ? '' : canonicalJson(nodeView(node));
        if (seen.get(name) === view) return;
        if (type === 'delete') seen.delete(name); else seen.set(name, view);
        for (const pod of this.pods.list()) if (pod.spec?.nodeName === name) byOwnerLabel(pod);
      });
      // Bound and not finished: what holds resources on the nodes (the kube-scheduler's own pod informer selects the same).
      const fieldSelector = 'spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed';
      this.boundPods = new Informer<V1Pod>({
        ...common, name: 'boundpods', path: '/api/v1/pods', fieldSelector, transform: podUsageForCache,
        list: () => core.listPodForAllNamespaces({ fieldSelector }),
      });
    }
    this.bds.onEvent((bd) => this.enqueue(key(bd.metadata?.namespace, bd.metadata?.name)));
    this.pods.onEvent(observing('pods'));
    this.services.onEvent(observing('services'));
    this.informers = [this.bds, this.pods, this.services, this.networkPolicies, this.nodes, this.boundPods, this.pdbs].filter((i) => i !== undefined) as Array<Informer<KubernetesObject>>;
  }

  /** True once every informer holds its initial list and the workers run. */
  get ready(): boolean { return this.started; }

  /** The reconcile loop's heartbeat: false while a reconcile has been stuck longer than stuckReconcileMs. */
  live(): boolean {
    const limit = this.options.stuckReconcileMs ?? 180_000;
    const now = Date.now();
    return [...this.inFlight.values()].every((since) => now - since < limit);
  }

  private enqueue(k: string): void {
    this.queue.add(k);
    if (this.options.metrics) setWorkqueueDepth(this.options.metrics, this.queue.length);
  }

  /**
   * Starts the informers and, once each has completed a LIST, the workers. Rejects (with the
   * informers stopped) when they have not all synced within cacheSyncTimeoutMs, naming the ones
   * that did not and their last error: the caller must not lead without caches.
   */
  async start(): Promise<void> {
    for (const informer of this.informers) informer.start();
    const timeoutMs = this.options.cacheSyncTimeoutMs ?? 120_000;
    try {
      await Promise.all(this.informers.map((i) => i.waitForSync(AbortSignal.timeout(timeoutMs))));
    } catch (err) {
      const missing = this.informers.filter((i) => !i.synced).map((i) => `${i.name}${i.error ? ` (${i.error})` : ''}`);
      await Promise.all(this.informers.map((i) => i.stop()));
      throw new Error(`caches did not sync within ${timeoutMs} ms: ${missing.join(', ') || String(err)}`);
    }
    const enqueueAll = () => {
      const live = new Set(this.pods.list().map((p) => p.metadata?.uid));
      for (const uid of this.ungated) if (!live.has(uid)) this.ungated.delete(uid);
      for (const bd of this.bds.list()) this.enqueue(key(bd.metadata?.namespace, bd.metadata?.name));
    };
    enqueueAll();
    this.resync = setInterval(enqueueAll, this.options.resyncMs ?? RESYNC_MS);
    this.resync.unref();
    const workers = this.options.workers ?? 4;
    this.workers = Array.from({ length: workers }, () => this.work());
    this.started = true;
    this.log.info('controller started', { namespace: this.options.namespace ?? '(all)', workers });
  }

  async stop(): Promise<void> {
    clearInterval(this.resync);
    this.queue.shutDown();
    await Promise.all(this.workers);
    await Promise.all(this.informers.map((i) => i.stop()));
    this.started = false;
  }

  private async work(): Promise<void> {
    for (let k = await this.queue.get(); k !== undefined; k = await this.queue.get()) {
      this.inFlight.set(k, Date.now());
      try {
        const run = () => this.reconcile(k!);
        if (this.options.metrics) await timeReconcile(this.options.metrics, run);
        else await run();
        this.queue.forget(k);
      } catch (err) {
        const delay = this.queue.addRateLimited(k);
        this.log.warn('reconcile failed; retrying', { key: k, retryInMs: delay, error: message(err), code: statusCode(err) });
      } finally {
        this.inFlight.delete(k);
        this.queue.done(k);
        if (this.options.metrics) setWorkqueueDepth(this.options.metrics, this.queue.length);
      }
    }
  }

  private nodeViews(): Map<string, NodeView> | undefined {
    if (!this.nodes) return undefined;
    return new Map(this.nodes.list().map((n) => [n.metadata?.name ?? '', nodeView(n)]));
  }

  /**
   * Places gated multi-pod groups of `bd` through the controller-wide ledger, from the nodes, every bound pod
   * of the cluster and the operator's own pods; undefined without the node and cluster pod caches.
   */
  private placer(bd: BloomDeployment, nodes: NodeViews | undefined): Placer | undefined {
    const bound = this.boundPods;
    if (!nodes || !bound) return undefined;
    let view: Omit<ClusterView, 'reservations'> | undefined;
    return (group, epoch) => {
      if (!view) {
        const groupPods = this.pods.list();
        // The two watches lag apart: a group pod bound in one cache counts even before the other shows it.
        const seen = new Set(bound.list().map((p) => p.metadata?.uid));
        const holding = [...bound.list(), ...groupPods.filter((p) => p.spec?.nodeName && !seen.has(p.metadata?.uid) && p.status?.phase !== 'Failed' && p.status?.phase !== 'Succeeded')];
        view = { nodes, usage: holding.map((p) => ({ node: p.spec!.nodeName!, requests: podRequests(p) })), groupPods };
      }
      return this.ledger.place(view, groupDemand(bd, group, epoch));
    };
  }

  private lookup(namespace: string): CacheLookup {
    const caches: Record<Resource, Informer<KubernetesObject> | undefined> = { pods: this.pods, services: this.services, poddisruptionbudgets: this.pdbs, networkpolicies: this.networkPolicies };
    return (resource, name) => {
      const o = caches[resource]?.get(name, namespace);
      return o && { uid: o.metadata?.uid ?? '', resourceVersion: o.metadata?.resourceVersion ?? '', terminating: !!o.metadata?.deletionTimestamp };
    };
  }

  /** One reconcile of one BloomDeployment: observe, plan, write the difference. */
  async reconcile(k: string): Promise<void> {
    const [namespace, name] = k.split('/') as [string, string];
    let raw = this.bds.get(name, namespace);
    const metrics = this.options.metrics;
    const written = this.statusWritten.get(k);
    if (raw && written && raw.metadata.resourceVersion === written.over) raw = written.bd;
    else this.statusWritten.delete(k);
    if (!raw) {
      this.expectations.forget(k);
      if (metrics) forgetDeployment(metrics, namespace, name);
      return;
    }
    if (raw.metadata.deletionTimestamp) return;
    const now = this.now();
    const expected = this.expectations.check(k, this.lookup(namespace), now);
    if (expected.satisfied && expected.waiting.length > 0) {
      this.log.warn('expectations expired unconfirmed; planning anyway', { deployment: k, waiting: expected.waiting.map((e) => `${e.kind} ${e.resource}/${e.name}`) });
    }
    if (!expected.satisfied) {
      // The informers' events for these objects enqueue the key again; the expiry is the backstop.
      this.log.debug('waiting for the caches to show our writes', { deployment: k, waiting: expected.waiting.map((e) => `${e.kind} ${e.resource}/${e.name}`) });
      this.queue.addAfter(k, (this.expectations.expiry(k) ?? now) - now + 10);
      return;
    }
    const bd = withDefaults(raw);
    const uid = bd.metadata.uid;
    const ownedByThis = (o: KubernetesObject) =>
      o.metadata?.labels?.[LABELS.deployment] === name && (o.metadata?.ownerReferences ?? []).some((r) => r.controller && r.uid === uid);
    const nodes = this.nodeViews();
    const place = this.placer(bd, nodes);
    const plan = planDeployment({
      bd,
      services: this.services.list(namespace).filter(ownedByThis),
      pods: this.pods.list(namespace).filter(ownedByThis),
      pdbs: this.pdbs?.list(namespace).filter(ownedByThis),
      networkPolicies: this.networkPolicies.list(namespace).filter(ownedByThis),
      nodes,
      now,
      clusterDomain: this.options.clusterDomain ?? 'cluster.local',
      ...(place ? { place } : {}),
    });

    const actions = plan.actions.filter((a) => a.kind !== 'ungatePod' || !this.ungated.has(a.uid));
    if (await this.servicesLag(namespace, uid, actions)) {
      this.queue.addAfter(k, 1_000);
      return;
    }
    const landed: Expectation[] = [];
    const result = await executeScoped(actions, async (a) => {
      await this.write(namespace, a);
      const e = expectationOf(a);
      if (e) landed.push(e);
    });
    this.expectations.expect(k, landed, now);

    const refused = result.failures.filter((f) => isRefusal(f.action, f.error)).map((f) => writeFailure(f.action, f.error));
    await Promise.all(refused.map((f) => this.events.emit(raw, { type: 'Warning', reason: f.reason, message: f.message })));
    if (metrics) for (const f of refused) recordWriteFailure(metrics, namespace, name, f.reason);
    const landedEvents = plan.events.filter((e) => e.scope === undefined || !result.failedScopes.has(e.scope));
    await Promise.all(landedEvents.map((e) => this.events.emit(raw, e)));
    const count = (reason: string) => landedEvents.filter((e) => e.reason === reason).length;
    if (metrics) recordGroupRecreations(metrics, namespace, name, count('GroupRestarting'), count('GroupDisrupted'));
    const status = withWriteFailures(plan.status, refused, raw.status?.conditions, bd.metadata.generation, now);
    if (canonicalJson(status) !== canonicalJson(raw.status ?? {})) {
      const updated = await this.writer.replaceStatus(raw, status);
      if (updated) this.statusWritten.set(k, { over: raw.metadata.resourceVersion ?? '', bd: updated as BloomDeployment });
    }
    if (result.failures.length > 0) {
      const first = result.failures[0]!;
      throw Object.assign(new Error(`${result.failures.length} write(s) failed; first: ${writeFailure(first.action, first.error).message}`), { code: statusCode(first.error) });
    }
    if (metrics) setGroupPhases(metrics, namespace, name, countGroupPhases(plan.status.groups ?? []));
    if (actions.length > 0) this.log.info('reconciled', { deployment: k, writes: actions.map((a) => a.kind), phase: plan.status.phase });
    if (plan.wakeAt !== undefined) this.queue.addAfter(k, Math.max(0, plan.wakeAt - now) + 100);
  }

  /**
   * Orphan deletes (pods whose group Service the cache does not show) are planned on the word of
   * the Services cache; a live read confirms each such Service is gone. If one is not, the cache
   * lags and the whole plan (its deletes, and the groups it would create instead) is dropped.
   */
  private async servicesLag(namespace: string, uid: string | undefined, actions: readonly Action[]): Promise<boolean> {
    const services = [...new Set(actions.flatMap((a) => (a.kind === 'deletePod' && a.orphanOf ? [a.orphanOf] : [])))];
    const alive = await Promise.all(services.map(async (service) => {
      try {
        const found = await this.writer.readService(namespace, service);
        return (found.metadata?.ownerReferences ?? []).some((r) => r.controller && r.uid === uid);
      } catch (err) {
        return statusCode(err) !== 404;
      }
    }));
    const lagging = services.filter((_, i) => alive[i]);
    if (lagging.length > 0) this.log.warn('the Services cache lags behind live group Services; not planning on it', { namespace, services: lagging });
    return lagging.length > 0;
  }

  private async write(namespace: string, a: Action): Promise<void> {
    const w = this.writer;
    switch (a.kind) {
      case 'createService': return w.createService(a.service);
      case 'applyService': await w.applyService(a.service); return;
      case 'deleteService': await w.deleteService(namespace, a.name, a.uid); return;
      case 'patchRecord': await w.patchServiceRecord(namespace, a.name, a.resourceVersion, a.annotations, a.selector); return;
      case 'deletePod': await w.deletePod(namespace, a.name, a.uid, a.force); return;
      case 'createPod': return w.createPod(a.pod);
      case 'ungatePod': await w.ungatePod(namespace, a.name, a.gateIndex, a.domain); this.ungated.add(a.uid); return;
      case 'setGroupReady': await w.setGroupReady(namespace, a.name, a.ready, a.message); return;
      case 'createPdb': return w.createPdb(a.pdb);
      case 'applyPdb': await w.applyPdb(a.pdb); return;
      case 'deletePdb': await w.deletePdb(namespace, a.name, a.uid); return;
      case 'createNetworkPolicy': return w.createNetworkPolicy(a.policy);
      case 'applyNetworkPolicy': await w.applyNetworkPolicy(a.policy); return;
      case 'deleteNetworkPolicy': await w.deleteNetworkPolicy(namespace, a.name, a.uid); return;
      case 'applyPodGroup': await w.applyPodGroup(a.podGroup); return;
      case 'deletePodGroup': await w.deletePodGroup(namespace, a.name); return;
    }
  }
}
