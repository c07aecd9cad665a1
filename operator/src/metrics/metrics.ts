// The operator's Prometheus metrics: one registry, every metric defined here.
// The controller updates them through the helpers below, so label names and
// values stay consistent (and a deleted BloomDeployment leaves no series).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { GROUP_PHASES, type GroupPhase } from '../api/types.js';

/** Outcome of one reconcile of one key. */
export type ReconcileResult = 'success' | 'error' | 'requeue';
export const RECONCILE_RESULTS: readonly ReconcileResult[] = ['success', 'error', 'requeue'];

/** Reasons of the writes the API refused (events and bloom_operator_write_failures_total). */
export const WRITE_FAILURE_REASONS = ['FailedCreate', 'FailedDelete', 'FailedPatch'] as const;

export interface OperatorMetrics {
  registry: Registry;
  /** bloom_operator_reconcile_total{result}: reconciles finished. */
  reconcileTotal: Counter<'result'>;
  /** bloom_operator_reconcile_duration_seconds: time of one reconcile. */
  reconcileDuration: Histogram;
  /** bloom_operator_workqueue_depth: keys waiting in the work queue. */
  workqueueDepth: Gauge;
  /** bloom_operator_groups{namespace,deployment,phase}: groups per phase. */
  groups: Gauge<'namespace' | 'deployment' | 'phase'>;
  /** bloom_operator_group_restarts_total{namespace,deployment}: whole-group recreations. */
  groupRestarts: Counter<'namespace' | 'deployment'>;
  /** bloom_operator_group_disruptions_total{namespace,deployment}: whole-group recreations after a disruption (not charged to the restart budget). */
  groupDisruptions: Counter<'namespace' | 'deployment'>;
  /** bloom_operator_api_errors_total{verb,resource,code}: failed API server calls. */
  apiErrors: Counter<'verb' | 'resource' | 'code'>;
  /** bloom_operator_leader: 1 while this replica leads, else 0. */
  leader: Gauge;
  /** bloom_operator_informer_lists_total{informer,result}: LISTs of each informer (initial and re-lists). */
  informerLists: Counter<'informer' | 'result'>;
  /** bloom_operator_informer_synced{informer}: 1 once the informer's first LIST succeeded. */
  informerSynced: Gauge<'informer'>;
  /** bloom_operator_write_failures_total{namespace,deployment,reason}: writes refused by the API (FailedCreate, ...). */
  writeFailures: Counter<'namespace' | 'deployment' | 'reason'>;
}

export interface MetricsOptions {
  /** Registry to register into (default: a new one, never prom-client's global). */
  registry?: Registry;
  /** Also collect process/Node.js metrics (process_*, nodejs_*). Default true. */
  defaultMetrics?: boolean;
}

/** Buckets for reconcile latency: 1 ms .. 30 s. */
export const RECONCILE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Sampling period (ms) of the event-loop-lag metrics: prom-client's default, 10 ms, wakes the idle process
 * 100 times a second, about 0.6 CPU s per minute (measured), most of what an idle operator spends.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

export function createOperatorMetrics(opts: MetricsOptions = {}): OperatorMetrics {
  const registry = opts.registry ?? new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const registers = [registry];
  const m: OperatorMetrics = {
    registry,
    reconcileTotal: new Counter({
      name: 'bloom_operator_reconcile_total',
      help: 'Reconciles of BloomDeployments, by result (success, error, requeue).',
      labelNames: ['result'] as const,
      registers,
    }),
    reconcileDuration: new Histogram({
      name: 'bloom_operator_reconcile_duration_seconds',
      help: 'Duration of one reconcile of one BloomDeployment, in seconds.',
      buckets: RECONCILE_BUCKETS,
      registers,
    }),
    workqueueDepth: new Gauge({
      name: 'bloom_operator_workqueue_depth',
      help: 'Keys waiting in the reconcile work queue.',
      registers,
    }),
    groups: new Gauge({
      name: 'bloom_operator_groups',
      help: 'Tensor-parallel groups of each BloomDeployment, by phase.',
      labelNames: ['namespace', 'deployment', 'phase'] as const,
      registers,
    }),
    groupRestarts: new Counter({
      name: 'bloom_operator_group_restarts_total',
      help: 'Tensor-parallel groups recreated as a whole (a failed rank restarts its group).',
      labelNames: ['namespace', 'deployment'] as const,
      registers,
    }),
    groupDisruptions: new Counter({
      name: 'bloom_operator_group_disruptions_total',
      help: 'Tensor-parallel groups recreated as a whole after a disruption (eviction, preemption, node loss, placement stall); not charged to maxGroupRestarts.',
      labelNames: ['namespace', 'deployment'] as const,
      registers,
    }),
    apiErrors: new Counter({
      name: 'bloom_operator_api_errors_total',
      help: 'Failed Kubernetes API calls, by verb, resource and HTTP status code ("network" when none).',
      labelNames: ['verb', 'resource', 'code'] as const,
      registers,
    }),
    leader: new Gauge({
      name: 'bloom_operator_leader',
      help: '1 while this replica holds the leader-election lease, else 0.',
      registers,
    }),
    informerLists: new Counter({
      name: 'bloom_operator_informer_lists_total',
      help: 'LIST requests of each informer (the initial one and re-lists after 410 Gone), by result (success, error).',
      labelNames: ['informer', 'result'] as const,
      registers,
    }),
    informerSynced: new Gauge({
      name: 'bloom_operator_informer_synced',
      help: '1 once the informer holds a complete LIST, else 0; nothing is reconciled before every informer is synced.',
      labelNames: ['informer'] as const,
      registers,
    }),
    writeFailures: new Counter({
      name: 'bloom_operator_write_failures_total',
      help: 'Writes of owned objects the API refused, by deployment and reason (FailedCreate, FailedDelete, FailedPatch).',
      labelNames: ['namespace', 'deployment', 'reason'] as const,
      registers,
    }),
  };
  // Series that should read 0 rather than be absent before the first event.
  for (const result of RECONCILE_RESULTS) m.reconcileTotal.inc({ result }, 0);
  m.workqueueDepth.set(0);
  m.leader.set(0);
  return m;
}

/** Records one finished reconcile. */
export function observeReconcile(m: OperatorMetrics, result: ReconcileResult, seconds: number): void {
  m.reconcileTotal.inc({ result });
  m.reconcileDuration.observe(seconds);
}

/**
 * Times `fn` as one reconcile: 'error' when it throws (rethrown), else the
 * result it returns (default 'success').
 */
export async function timeReconcile<T extends ReconcileResult | void>(
  m: OperatorMetrics,
  fn: () => Promise<T>,
): Promise<T> {
  const end = m.reconcileDuration.startTimer();
  try {
    const result = await fn();
    m.reconcileTotal.inc({ result: result || 'success' });
    return result;
  } catch (err) {
    m.reconcileTotal.inc({ result: 'error' });
    throw err;
  } finally {
    end();
  }
}

/**
 * Sets the group counts of one BloomDeployment. Every known phase gets a
 * series (0 when absent from `counts`), so a phase that empties drops to 0.
 */
export function setGroupPhases(
  m: OperatorMetrics,
  namespace: string,
  deployment: string,
  counts: Partial<Record<GroupPhase, number>>,
): void {
  for (const phase of GROUP_PHASES) m.groups.set({ namespace, deployment, phase }, counts[phase] ?? 0);
}

/** Counts the phases of a list of groups, for setGroupPhases. */
export function countGroupPhases(groups: readonly { phase: GroupPhase }[]): Partial<Record<GroupPhase, number>> {
  const counts: Partial<Record<GroupPhase, number>> = {};
  for (const g of groups) counts[g.phase] = (counts[g.phase] ?? 0) + 1;
  return counts;
}

/** Counts whole-group restarts (workload failures) and recreations after disruptions. */
export function recordGroupRecreations(m: OperatorMetrics, namespace: string, deployment: string, restarts: number, disruptions: number): void {
  m.groupRestarts.inc({ namespace, deployment }, restarts);
  m.groupDisruptions.inc({ namespace, deployment }, disruptions);
}

/** Removes every series of a deleted BloomDeployment. */
export function forgetDeployment(m: OperatorMetrics, namespace: string, deployment: string): void {
  for (const phase of GROUP_PHASES) m.groups.remove({ namespace, deployment, phase });
  m.groupRestarts.remove({ namespace, deployment });
  m.groupDisruptions.remove({ namespace, deployment });
  for (const reason of WRITE_FAILURE_REASONS) m.writeFailures.remove({ namespace, deployment, reason });
}


/** The `code` label of an API error: the HTTP status of a client-node ApiException, else "network". */
export function apiErrorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
    for (const c of [e.code, e.statusCode, e.response?.statusCode]) {
      if (typeof c === 'number' && c >= 100 && c < 600) return String(c);
    }
  }
  return 'network';
}

/** Counts one failed API call, e.g. recordApiError(m, 'create', 'pods', err). */
export function recordApiError(m: OperatorMetrics, verb: string, resource: string, err: unknown): void {
  m.apiErrors.inc({ verb, resource, code: apiErrorCode(err) });
}

export function setLeader(m: OperatorMetrics, leading: boolean): void {
  m.leader.set(leading ? 1 : 0);
}

export function recordInformerList(m: OperatorMetrics, informer: string, ok: boolean): void {
  m.informerLists.inc({ informer, result: ok ? 'success' : 'error' });
}

export function setInformerSynced(m: OperatorMetrics, informer: string, synced: boolean): void {
  m.informerSynced.set({ informer }, synced ? 1 : 0);
}

export function recordWriteFailure(m: OperatorMetrics, namespace: string, deployment: string, reason: string): void {
  m.writeFailures.inc({ namespace, deployment, reason });
}

export function setWorkqueueDepth(m: OperatorMetrics, depth: number): void {
  m.workqueueDepth.set(depth);
}
