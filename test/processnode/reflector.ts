/**
 * List + watch into a cache, the way a kubelet's pod source does it, without trusting the watch:
 * any end or error of the watch re-lists, and a periodic re-list (resync) catches a watch that died
 * silently. `onChange(key)` fires for every object that was added, changed or removed.
 */
import { Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';

export interface ReflectorOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** Watch path, e.g. /api/v1/pods. */
  path: string;
  list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>;
  fieldSelector?: string;
  onChange: (key: string) => void;
  resyncMs?: number;
  log: (msg: string) => void;
}

export const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Reflector<T extends KubernetesObject> {
  readonly cache = new Map<string, T>();
  private abort: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private relisting: Promise<void> | undefined;
  synced = false;

  constructor(private readonly o: ReflectorOptions<T>) {}

  async start(): Promise<void> {
    await this.relist();
    this.timer = setInterval(() => { void this.relist(); }, this.o.resyncMs ?? 10_000);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const old = this.abort;
    this.abort = undefined;
    old?.abort();
  }

  get(key: string): T | undefined { return this.cache.get(key); }

  private relist(): Promise<void> {
    this.relisting ??= this.doRelist().finally(() => { this.relisting = undefined; });
    return this.relisting;
  }

  private async doRelist(): Promise<void> {
    if (this.stopped) return;
    let list;
    try {
      list = await this.o.list();
    } catch (err) {
      this.o.log(`list ${this.o.path} failed: ${String((err as Error).message ?? err).slice(0, 200)}`);
      return;
    }
    const seen = new Set<string>();
    for (const item of list.items) {
      const key = keyOf(item);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, item);
      if (old?.metadata?.resourceVersion !== item.metadata?.resourceVersion) this.o.onChange(key);
    }
    for (const key of [...this.cache.keys()]) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.o.onChange(key);
      }
    }
    this.synced = true;
    const old = this.abort;
    this.abort = undefined;
    old?.abort();
    await this.watch(list.metadata?.resourceVersion);
  }

  private async watch(resourceVersion: string | undefined): Promise<void> {
    if (this.stopped) return;
    const params: Record<string, string | boolean | number> = { allowWatchBookmarks: true, timeoutSeconds: 300 };
    if (resourceVersion) params.resourceVersion = resourceVersion;
    if (this.o.fieldSelector) params.fieldSelector = this.o.fieldSelector;
    let mine: AbortController | undefined;
    try {
      mine = await new Watch(this.o.kc).watch(this.o.path, params, (phase, obj: T) => {
        if (phase === 'BOOKMARK' || phase === 'ERROR') {
          if (phase === 'ERROR') mine?.abort();
          return;
        }
        const key = keyOf(obj);
        if (phase === 'DELETED') this.cache.delete(key);
        else this.cache.set(key, obj);
        this.o.onChange(key);
      }, (err) => {
        if (this.stopped || this.abort !== mine) return;
        if (err && !String(err).includes('aborted')) this.o.log(`watch ${this.o.path} ended: ${String(err).slice(0, 200)}`);
        setTimeout(() => { void this.relist(); }, 500);
      });
      this.abort = mine;
    } catch (err) {
      this.o.log(`watch ${this.o.path} failed: ${String((err as Error).message ?? err).slice(0, 200)}`);
      setTimeout(() => { void this.relist(); }, 1000);
    }
  }
}
