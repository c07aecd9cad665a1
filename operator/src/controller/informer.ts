import { makeInformer, type Informer, type KubeConfig, type KubernetesListObject, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import type { Logger } from '../log.js';

export interface InformerOptions<T extends KubernetesObject> {
  name: string;
  kubeConfig: KubeConfig;
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  log: Logger;
  /** Delay before restarting a watch that stopped with an error. */
  restartDelayMs?: number;
  /** Re-watch (from the last resourceVersion, no re-list) when no event arrived for this long: watches can die silently. */
  watchdogMs?: number;
}

/**
 * A client-node informer that does not die: client-node re-lists on 410 and
 * re-watches after a clean close, but stops on any other error; this wrapper
 * restarts it, and a watchdog restarts a watch that went silent.
 */
export class ResilientInformer<T extends KubernetesObject> {
  private readonly informer: Informer<T> & ObjectCache<T>;
  private readonly handlers: Array<(obj: T) => void> = [];
  private lastEvent = Date.now();
  private watchdog: NodeJS.Timeout | undefined;
  private stopped = false;
  private restarting = false;

  constructor(private readonly options: InformerOptions<T>) {
    this.informer = makeInformer(options.kubeConfig, options.path, options.list, options.labelSelector);
    const notify = (obj: T) => {
      this.lastEvent = Date.now();
      for (const handler of this.handlers) handler(obj);
    };
    this.informer.on('add', notify);
    this.informer.on('update', notify);
    this.informer.on('delete', notify);
    this.informer.on('connect', () => { this.lastEvent = Date.now(); });
    this.informer.on('error', (err) => {
      options.log.warn('watch stopped; restarting', { informer: options.name, error: String(err?.message ?? err) });
      void this.restart(options.restartDelayMs ?? 1000);
    });
  }

  get cache(): ObjectCache<T> { return this.informer; }

  onEvent(handler: (obj: T) => void): void { this.handlers.push(handler); }

  /** Lists, starts watching, and resolves once the cache holds the initial list. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.informer.start();
    const watchdogMs = this.options.watchdogMs ?? 30_000;
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastEvent > watchdogMs) {
        this.options.log.info('watch silent; restarting', { informer: this.options.name });
        void this.restart(0);
      }
    }, Math.min(watchdogMs, 30_000));
    this.watchdog.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    await this.informer.stop();
  }

  private async restart(delayMs: number): Promise<void> {
    if (this.stopped || this.restarting) return;
    this.restarting = true;
    try {
      await this.informer.stop();
      await new Promise((r) => setTimeout(r, delayMs));
      this.lastEvent = Date.now();
      if (!this.stopped) await this.informer.start();
    } catch (err) {
      this.options.log.warn('informer restart failed; retrying', { informer: this.options.name, error: String(err) });
      this.restarting = false;
      return this.restart(Math.min(Math.max(delayMs * 2, 1000), 30_000));
    }
    this.restarting = false;
  }
}
