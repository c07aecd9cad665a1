/**
 * The BloomDeployment controller: informers on BloomDeployments and on the pods,
 * Services and nodes they depend on feed one work queue keyed namespace/name;
 * workers reconcile keys one at a time each (never one key twice at once), run
 * the pure planDeployment, and execute its writes. Level-triggered: every
 * reconcile starts from the caches, so an unchanged deployment costs no write.
 */
import { CoreV1Api, CustomObjectsApi, PolicyV1Api, type V1PodDisruptionBudget, type KubeConfig, type KubernetesListObject, type V1Node, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, PLURAL } from '../api/constants.js';
import { withDefaults } from '../api/defaults.js';
import type { BloomDeployment } from '../api/types.js';
import { LABELS } from '../groups/labels.js';
import { canonicalJson } from '../groups/revision.js';
import type { Action } from '../lifecycle/actions.js';
import { nodeView, type NodeView } from '../lifecycle/observe.js';
import { planDeployment } from '../lifecycle/plan.js';
import type { Logger } from '../log.js';
import { countGroupPhases, forgetDeployment, recordGroupRestart, setGroupPhases, setWorkqueueDepth, timeReconcile, type OperatorMetrics } from '../metrics/metrics.js';
import { EventRecorder } from './events.js';
import { ResilientInformer } from './informer.js';
import { KubeWriter } from './kube-writer.js';
import { WorkQueue } from './queue.js';

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
  /** Reconcile every deployment at this period even without events (a guard against a missed event). */
  resyncMs?: number;
  now?: () => number;
}

const key = (namespace: string | undefined, name: string | undefined) => `${namespace ?? ''}/${name ?? ''}`;

export class BloomController {
  private readonly writer: KubeWriter;
  private readonly queue = new WorkQueue();
  private readonly bds: ResilientInformer<BloomDeployment>;
  private readonly pods: ResilientInformer<V1Pod>;
  private readonly services: ResilientInformer<V1Service>;
  private readonly nodes: ResilientInformer<V1Node> | undefined;
  private readonly pdbs: ResilientInformer<V1PodDisruptionBudget> | undefined;
  private readonly events: EventRecorder;
  private readonly log: Logger;
  private readonly now: () => number;
  private workers: Promise<void>[] = [];
  private resync: NodeJS.Timeout | undefined;
  /**
   * Stale-cache guards (the informers lag behind our own writes): pods whose gate this process
   * already lifted (gates are never added back), and the status object each key last wrote,
   * with the resourceVersion it was written over, used until the cache has caught up.
   */
  private readonly ungated = new Set<string>();
  private readonly statusWritten = new Map<string, { over: string; bd: BloomDeployment }>();
  private synced = false;

  constructor(private readonly options: ControllerOptions) {
    const { kubeConfig, namespace, log } = options;
    this.log = log;
    this.now = options.now ?? Date.now;
    this.writer = new KubeWriter(kubeConfig, options.metrics);
    this.events = new EventRecorder(kubeConfig, options.identity ?? 'bloom-operator', log);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const custom = kubeConfig.makeApiClient(CustomObjectsApi);
    const owned = LABELS.deployment;
    const scope = namespace ? `/namespaces/${namespace}` : '';
    const common = { kubeConfig, log };

    this.bds = new ResilientInformer<BloomDeployment>({
      ...common, name: 'bloomdeployments', path: `/apis/${API_GROUP}/${API_VERSION}${scope}/${PLURAL}`,
      list: async () => (namespace
        ? await custom.listNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace, plural: PLURAL })
        : await custom.listClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: PLURAL })) as KubernetesListObject<BloomDeployment>,
    });
    this.pods = new ResilientInformer<V1Pod>({
      ...common, name: 'pods', path: `/api/v1${scope}/pods`, labelSelector: owned,
      list: () => (namespace ? core.listNamespacedPod({ namespace, labelSelector: owned }) : core.listPodForAllNamespaces({ labelSelector: owned })),
    });
    this.services = new ResilientInformer<V1Service>({
      ...common, name: 'services', path: `/api/v1${scope}/services`, labelSelector: owned,
      list: () => (namespace ? core.listNamespacedService({ namespace, labelSelector: owned }) : core.listServiceForAllNamespaces({ labelSelector: owned })),
    });
    if (options.manageDisruptionBudgets ?? true) {
      const policy = kubeConfig.makeApiClient(PolicyV1Api);
      this.pdbs = new ResilientInformer<V1PodDisruptionBudget>({
        ...common, name: 'poddisruptionbudgets', path: `/apis/policy/v1${scope}/poddisruptionbudgets`, labelSelector: owned,
        list: () => (namespace
          ? policy.listNamespacedPodDisruptionBudget({ namespace, labelSelector: owned })
          : policy.listPodDisruptionBudgetForAllNamespaces({ labelSelector: owned })),
      });
      this.pdbs.onEvent((pdb) => {
        const owner = pdb.metadata?.labels?.[owned];
        if (owner) this.enqueue(key(pdb.metadata?.namespace, owner));
      });
    }
    if (options.watchNodes ?? true) {
      this.nodes = new ResilientInformer<V1Node>({ ...common, name: 'nodes', path: '/api/v1/nodes', list: () => core.listNode() });
    }

    this.bds.onEvent((bd) => this.enqueue(key(bd.metadata?.namespace, bd.metadata?.name)));
    const byOwnerLabel = (obj: V1Pod | V1Service) => {
      const owner = obj.metadata?.labels?.[owned];
      if (owner) this.enqueue(key(obj.metadata?.namespace, owner));
    };
    this.pods.onEvent(byOwnerLabel);
    this.services.onEvent(byOwnerLabel);
    this.nodes?.onEvent((node) => {
      for (const pod of this.pods.cache.list()) if (pod.spec?.nodeName === node.metadata?.name) byOwnerLabel(pod);
    });
  }

  /** True once every informer holds its initial list. */
  get ready(): boolean { return this.synced; }

  private enqueue(k: string): void {
    this.queue.add(k);
    if (this.options.metrics) setWorkqueueDepth(this.options.metrics, this.queue.length);
  }

  async start(): Promise<void> {
    await Promise.all([this.bds.start(), this.pods.start(), this.services.start(), this.nodes?.start(), this.pdbs?.start()]);
    this.synced = true;
    const enqueueAll = () => {
      const live = new Set(this.pods.cache.list().map((p) => p.metadata?.uid));
      for (const uid of this.ungated) if (!live.has(uid)) this.ungated.delete(uid);
      for (const bd of this.bds.cache.list()) this.enqueue(key(bd.metadata?.namespace, bd.metadata?.name));
    };
    enqueueAll();
    this.resync = setInterval(enqueueAll, this.options.resyncMs ?? 60_000);
    this.resync.unref();
    const workers = this.options.workers ?? 4;
    this.workers = Array.from({ length: workers }, () => this.work());
    this.log.info('controller started', { namespace: this.options.namespace ?? '(all)', workers });
  }

  async stop(): Promise<void> {
    clearInterval(this.resync);
    this.queue.shutDown();
    await Promise.all(this.workers);
    await Promise.all([this.bds.stop(), this.pods.stop(), this.services.stop(), this.nodes?.stop(), this.pdbs?.stop()]);
    this.synced = false;
  }

  private async work(): Promise<void> {
    for (let k = await this.queue.get(); k !== undefined; k = await this.queue.get()) {
      try {
        const run = () => this.reconcile(k!);
        if (this.options.metrics) await timeReconcile(this.options.metrics, run);
        else await run();
        this.queue.forget(k);
      } catch (err) {
        const delay = this.queue.addRateLimited(k);
        this.log.warn('reconcile failed; retrying', { key: k, retryInMs: delay, error: String((err as Error)?.message ?? err), code: (err as { code?: number })?.code });
      } finally {
        this.queue.done(k);
        if (this.options.metrics) setWorkqueueDepth(this.options.metrics, this.queue.length);
      }
    }
  }

  private nodeViews(): Map<string, NodeView> | undefined {
    if (!this.nodes) return undefined;
    return new Map(this.nodes.cache.list().map((n) => [n.metadata?.name ?? '', nodeView(n)]));
  }

  /** One reconcile of one BloomDeployment: observe, plan, write the difference. */
  async reconcile(k: string): Promise<void> {
    const [namespace, name] = k.split('/') as [string, string];
    let raw = this.bds.cache.get(name, namespace);
    const metrics = this.options.metrics;
    const written = this.statusWritten.get(k);
    if (raw && written && raw.metadata.resourceVersion === written.over) raw = written.bd;
    else this.statusWritten.delete(k);
    if (!raw) {
      if (metrics) forgetDeployment(metrics, namespace, name);
      return;
    }
    if (raw.metadata.deletionTimestamp) return;
    const bd = withDefaults(raw);
    const uid = bd.metadata.uid;
    const ownedByThis = (o: V1Pod | V1Service | V1PodDisruptionBudget) =>
      o.metadata?.labels?.[LABELS.deployment] === name && (o.metadata?.ownerReferences ?? []).some((r) => r.controller && r.uid === uid);
    const now = this.now();
    const plan = planDeployment({
      bd,
      services: this.services.cache.list(namespace).filter(ownedByThis),
      pods: this.pods.cache.list(namespace).filter(ownedByThis),
      placementPods: this.pods.cache.list(),
      pdbs: this.pdbs?.cache.list(namespace).filter(ownedByThis),
      nodes: this.nodeViews(),
      now,
      clusterDomain: this.options.clusterDomain ?? 'cluster.local',
    });

    // A failed write (a quota, a conflict with a stale cache) still leaves the status reported; the key is retried.
    const failure = await this.execute(namespace, plan.actions.filter((a) => a.kind !== 'ungatePod' || !this.ungated.has(a.uid))).then(() => undefined, (err: unknown) => err);
    if (failure === undefined) {
      for (const event of plan.events) {
        await this.events.emit(raw, event);
        if (metrics && event.reason === 'GroupRestarting') recordGroupRestart(metrics, namespace, name);
      }
    }
    if (canonicalJson(plan.status) !== canonicalJson(raw.status ?? {})) {
      const updated = await this.writer.replaceStatus(raw, plan.status);
      if (updated) this.statusWritten.set(k, { over: raw.metadata.resourceVersion ?? '', bd: updated as BloomDeployment });
    }
    if (failure !== undefined) throw failure;
    if (metrics) setGroupPhases(metrics, namespace, name, countGroupPhases(plan.status.groups ?? []));
    if (plan.actions.length > 0) this.log.info('reconciled', { deployment: k, writes: plan.actions.map((a) => a.kind), phase: plan.status.phase });
    if (plan.wakeAt !== undefined) this.queue.addAfter(k, Math.max(0, plan.wakeAt - now) + 100);
  }

  /** Writes in dependency order: Services and records first, then pods; each stage in parallel. */
  private async execute(namespace: string, actions: readonly Action[]): Promise<void> {
    const w = this.writer;
    const stages: Array<Array<Action['kind']>> = [['createService', 'patchServiceSpec', 'patchRecord', 'deleteService', 'createPdb', 'deletePdb'], ['deletePod'], ['createPod'], ['ungatePod']];
    for (const kinds of stages) {
      await Promise.all(actions.filter((a) => kinds.includes(a.kind)).map((a) => {
        switch (a.kind) {
          case 'createService': return w.createService(a.service);
          case 'patchServiceSpec': return w.patchServiceSpec(namespace, a.name, a.resourceVersion, { selector: a.selector, ports: a.ports });
          case 'deleteService': return w.deleteService(namespace, a.name);
          case 'patchRecord': return w.patchServiceRecord(namespace, a.name, a.resourceVersion, a.annotations, a.selector);
          case 'deletePod': return w.deletePod(namespace, a.name, a.uid, a.force);
          case 'createPod': return w.createPod(a.pod);
          case 'ungatePod': return w.ungatePod(namespace, a.name, a.gateIndex).then(() => { this.ungated.add(a.uid); });
          case 'createPdb': return w.createPdb(a.pdb);
          case 'deletePdb': return w.deletePdb(namespace, a.name);
        }
      }));
    }
  }
}
