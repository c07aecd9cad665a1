/**
 * `bloom-operator run`: the controller with its health and metrics endpoints, optionally
 * behind leader election. Shuts down cleanly on SIGTERM/SIGINT (releasing the lease).
 */
import { KubeConfig } from '@kubernetes/client-node';
import { BloomController } from '../controller/controller.js';
import { apiKubeConfig } from '../kube/api-kubeconfig.js';
import { LeaderElector } from '../leader/lease.js';
import { createLogger, type LogLevel } from '../log.js';
import { createOperatorMetrics, setLeader } from '../metrics/metrics.js';
import { startMetricsServer, type MetricsServer } from '../metrics/server.js';
import { startWebhookServer } from '../webhook/server.js';

export interface RunOptions {
  kubeconfig?: string;
  namespace?: string;
  logLevel: LogLevel;
  metricsPort: number;
  healthPort: number;
  bindAddress: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  leaseDurationSeconds: number;
  identity: string;
  clusterDomain: string;
  workers: number;
  watchNodes: boolean;
  manageDisruptionBudgets: boolean;
  /** Seconds the controller may take to list every watched resource once leading. */
  cacheSyncTimeoutSeconds: number;
  /** Seconds any API request (not a watch) may take. */
  requestTimeoutSeconds: number;
  /** The eviction webhook (HTTPS on this port, tls.crt and tls.key from certDir), if served. */
  webhook?: { port: number; certDir: string };
}

export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromCluster();
  return kc;
}

export async function run(options: RunOptions): Promise<void> {
  const log = createLogger(options.logLevel);
  const kubeConfig = apiKubeConfig(loadKubeConfig(options.kubeconfig), options.requestTimeoutSeconds * 1000);
  const metrics = createOperatorMetrics();
  const controller = new BloomController({
    kubeConfig, log, metrics, identity: options.identity, workers: options.workers, clusterDomain: options.clusterDomain, watchNodes: options.watchNodes, manageDisruptionBudgets: options.manageDisruptionBudgets,
    cacheSyncTimeoutMs: options.cacheSyncTimeoutSeconds * 1000,
    ...(options.namespace ? { namespace: options.namespace } : {}),
  });
  let leading = !options.leaderElect;
  const servers: Array<Pick<MetricsServer, 'close'>> = [];
  const host = options.bindAddress;
  // Only the leader's controller counts: a standby is healthy and ready, just waiting.
  const ready = () => (leading ? controller.ready : true);
  const live = () => (leading ? controller.live() : true);
  const metricsServer = await startMetricsServer({ port: options.metricsPort, host, registry: metrics.registry, ready, live });
  const healthServer = options.healthPort !== options.metricsPort ? await startMetricsServer({ port: options.healthPort, host, ready, live }) : metricsServer;
  servers.push(...new Set([metricsServer, healthServer]));
  log.info('serving metrics and health', { metrics: metricsServer.url, health: healthServer.url, identity: options.identity });
  // Every replica serves the eviction webhook (behind one Service); its marks reach the leader through the API.
  const webhook = options.webhook && await startWebhookServer({ ...options.webhook, host, kubeConfig, log });
  if (webhook) {
    servers.push(webhook);
    log.info('serving the eviction webhook', { port: webhook.port });
  }

  let stopping: Promise<void> | undefined;
  let startFailed = false;
  /** Starts the controller; when it cannot (caches not synced in time), stops what it started and rethrows. */
  const startController = async () => {
    try {
      await controller.start();
    } catch (err) {
      startFailed = true;
      log.error('controller failed to start; exiting', { error: String((err as Error)?.message ?? err) });
      await controller.stop().catch(() => {});
      throw err;
    }
  };
  const elector = options.leaderElect
    ? new LeaderElector({
      kubeConfig, namespace: options.leaderElectionNamespace, name: options.leaderElectionId, identity: options.identity,
      leaseDurationSeconds: options.leaseDurationSeconds, log,
      onStartedLeading: async () => {
        leading = true;
        setLeader(metrics, true);
        log.info('became leader; starting controller', { identity: options.identity });
        await startController();
      },
      onStoppedLeading: async () => {
        setLeader(metrics, false);
        if (!stopping && !startFailed) {
          // A lost lease means another replica may already reconcile: stop at once, as controller-runtime does.
          log.error('lost leadership; exiting');
          process.exit(1);
        }
      },
    })
    : undefined;

  const shutdown = (signal: string) => {
    stopping ??= (async () => {
      log.info('shutting down', { signal });
      await controller.stop().catch(() => {});
      if (elector) await elector.release().catch((err: unknown) => log.warn('lease release failed', { error: String(err) }));
      await Promise.all(servers.map((s) => s.close()));
      log.info('stopped');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  try {
    if (elector) {
      await elector.run();
    } else {
      setLeader(metrics, true);
      await startController();
    }
  } catch {
    // The controller is stopped and the lease released (a standby takes over at once).
    await Promise.all(servers.map((s) => s.close()));
    process.exit(1);
  }
}
