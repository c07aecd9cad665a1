/**
 * A list-watch informer with client-go's reflector semantics, hand-written so every rule is visible:
 * - LIST once, then WATCH from the list's resourceVersion with bookmarks, so the resourceVersion
 *   stays fresh while nothing changes and a re-watch never needs a re-list;
 * - a watch that ends (server timeout, cut connection, error) is re-opened from the last
 *   resourceVersion seen (event or bookmark); only 410 Gone re-lists;
 * - a failed LIST or watch is retried with capped exponential back-off (seconds, not minutes);
 * - `synced` turns true after the first successful LIST and stays true: a re-list replaces the
 *   store in one step (deletes for objects gone meanwhile), so readers never see it half-filled;
 * - a watch silent for idleMs (no event, no bookmark: the apiserver sends one about every minute)
 *   is cut and re-opened from its resourceVersion, never re-listed;
 * - objects are stored without what the controller never reads (controller-runtime's cache transform):
 *   cache-transform.ts forCache, then the informer's own `transform`.
 */
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { recordInformerList, setInformerSynced, type OperatorMetrics } from '../metrics/metrics.js';
import { Backoff } from './backoff.js';
import { forCache } from './cache-transform.js';
import { streamWatch, WatchHttpError, type WatchEvent } from './watch-stream.js';

export type InformerEventType = 'add' | 'update' | 'delete';

export interface InformerOptions<T extends KubernetesObject> {
  name: string;
  kubeConfig: KubeConfig;
  /** Collection path of the watch, e.g. /api/v1/namespaces/ns/pods. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  /** Selectors of the watch; `list` must apply the same ones. */
  labelSelector?: string;
  fieldSelector?: string;
  log: Logger;
  metrics?: OperatorMetrics;
  /** Back-off of failed LISTs and watches: initial delay, doubled per failure up to maxMs. */
  backoff?: { initialMs: number; maxMs: number };
  /** Cut and re-open (from the same resourceVersion) a watch that received nothing for this long. */
  idleMs?: number;
  /** Trims each object before it is stored (after forCache); it must keep what every reader reads. */
  transform?: (obj: T) => T;
  /** Server-side watch timeout, randomized in [min, 2*min) as client-go does. */
  minWatchTimeoutSeconds?: number;
}

export interface ReadCache<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): T[];
}

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Informer<T extends KubernetesObject> implements ReadCache<T> {
  private store = new Map<string, T>();
  private resourceVersion: string | undefined;
  private readonly handlers: Array<(obj: T, type: InformerEventType) => void> = [];
  private readonly syncWaiters: Array<() => void> = [];
  private stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private lastError: string | undefined;
  private hasSynced = false;

  constructor(private readonly options: InformerOptions<T>) {}

  get name(): string { return this.options.name; }
  /** True once the first LIST has filled the store. */
  get synced(): boolean { return this.hasSynced; }
  /** The last LIST or watch error, while it is not followed by a success. */
  get error(): string | undefined { return this.lastError; }

  get(name: string, namespace?: string): T | undefined { return this.store.get(`${namespace ?? ''}/${name}`); }

  list(namespace?: string): T[] {
    const all = [...this.store.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  onEvent(handler: (obj: T, type: InformerEventType) => void): void { this.handlers.push(handler); }

  start(): void {
    if (this.loop) return;
    this.stopping = new AbortController();
    this.loop = this.run();
  }

  /** Resolves once synced; rejects when the signal aborts first. */
  waitForSync(signal: AbortSignal): Promise<void> {
    if (this.hasSynced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new Error(`informer ${this.name} did not sync${this.lastError ? `: ${this.lastError}` : ''}`));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(() => { signal.removeEventListener('abort', onAbort); resolve(); });
    });
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    const { initialMs, maxMs } = this.options.backoff ?? { initialMs: 250, maxMs: 5_000 };
    const backoff = new Backoff(initialMs, maxMs);
    const stop = this.stopping.signal;
    while (!stop.aborted) {
      if (this.resourceVersion === undefined) {
        try {
          await this.relist();
          backoff.reset();
        } catch (err) {
          if (stop.aborted) break;
          this.failed('list failed; retrying', err);
          if (this.options.metrics) recordInformerList(this.options.metrics, this.name, false);
          await backoff.wait(stop);
          continue;
        }
      }
      const outcome = await this.watchOnce(stop);
      if (stop.aborted) break;
      if (outcome.gone) {
        this.options.log.info('watch expired (410 Gone); re-listing', { informer: this.name });
        this.resourceVersion = undefined;
        continue;
      }
      if (outcome.received) backoff.reset();
      if (outcome.error === undefined) continue;
      this.failed('watch ended; re-watching from the last resourceVersion', outcome.error);
      await backoff.wait(stop);
    }
  }

  private failed(message: string, err: unknown): void {
    this.lastError = String((err as Error)?.message ?? err);
    this.options.log.warn(message, { informer: this.name, error: this.lastError, code: (err as { code?: number })?.code });
  }

  /** Replaces the store with a fresh list, notifying adds, updates and deletes. */
  private async relist(): Promise<void> {
    const list = await this.options.list();
    const fresh = new Map(list.items.map((o) => [keyOf(o), this.trim(o)]));
    const previous = this.store;
    this.store = fresh;
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
    this.lastError = undefined;
    if (this.options.metrics) recordInformerList(this.options.metrics, this.name, true);
    for (const [k, o] of previous) if (!fresh.has(k)) this.notify(o, 'delete');
    for (const [k, o] of fresh) this.notify(o, previous.has(k) ? 'update' : 'add');
    if (!this.hasSynced) {
      this.hasSynced = true;
      if (this.options.metrics) setInformerSynced(this.options.metrics, this.name, true);
      for (const waiter of this.syncWaiters.splice(0)) waiter();
    }
  }

  private async watchOnce(stop: AbortSignal): Promise<{ gone?: boolean; error?: unknown; received: boolean }> {
    const abort = new AbortController();
    const onStop = () => abort.abort();
    stop.addEventListener('abort', onStop, { once: true });
    const idleMs = this.options.idleMs ?? 150_000;
    let idle: NodeJS.Timeout | undefined;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => abort.abort(new Error(`no event or bookmark for ${idleMs} ms`)), idleMs);
      idle.unref();
    };
    const minTimeout = this.options.minWatchTimeoutSeconds ?? 300;
    const query: Record<string, string> = {
      resourceVersion: this.resourceVersion ?? '',
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(Math.floor(minTimeout * (1 + Math.random()))),
      ...(this.options.labelSelector ? { labelSelector: this.options.labelSelector } : {}),
      ...(this.options.fieldSelector ? { fieldSelector: this.options.fieldSelector } : {}),
    };
    let received = false;
    let gone = false;
    let status: { code?: number; message?: string } | undefined;
    const onEvent = (event: WatchEvent<T>) => {
      received = true;
      const rv = event.object?.metadata?.resourceVersion;
      switch (event.type) {
        case 'ADDED':
        case 'MODIFIED':
        case 'DELETED':
          this.apply(event.object, event.type);
          if (rv) this.resourceVersion = rv;
          break;
        case 'BOOKMARK':
          if (rv) this.resourceVersion = rv;
          break;
        case 'ERROR':
          status = event.object as { code?: number; message?: string };
          gone = status.code === 410;
          break;
      }
    };
    touch();
    try {
      await streamWatch(this.options.kubeConfig, this.options.path, query, onEvent, touch, abort.signal);
      if (gone) return { gone, received };
      if (status) return { error: Object.assign(new Error(status.message ?? 'watch error'), { code: status.code }), received };
      this.lastError = undefined;
      return { received };
    } catch (err) {
      if (err instanceof WatchHttpError && err.code === 410) return { gone: true, received };
      return { error: abort.signal.reason ?? err, received };
    } finally {
      clearTimeout(idle);
      stop.removeEventListener('abort', onStop);
    }
  }

  private apply(obj: T, type: 'ADDED' | 'MODIFIED' | 'DELETED'): void {
    const k = keyOf(obj);
    if (type === 'DELETED') {
      this.store.delete(k);
      this.notify(obj, 'delete');
      return;
    }
    const existed = this.store.has(k);
    this.store.set(k, this.trim(obj));
    this.notify(obj, existed ? 'update' : 'add');
  }

  private trim(obj: T): T {
    const o = forCache(obj);
    return this.options.transform ? this.options.transform(o) : o;
  }

  private notify(obj: T, type: InformerEventType): void {
    for (const handler of this.handlers) handler(obj, type);
  }
}
