/**
 * Shared pieces of the control-plane benchmarks (controlplane.ts, recovery.ts): a dedicated
 * LocalCluster, a namespace context compatible with the e2e helpers, watches that timestamp
 * the moment a condition first holds, statistics, audit-log accounting and RESULTS.md output.
 * Benchmarks print plain console output (no winston).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, PatchStrategy, PolicyV1Api, Watch, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, PLURAL } from '../../operator/src/api/constants.js';
import type { BloomDeployment } from '../../operator/src/api/types.js';
import { LABELS } from '../../operator/src/groups/labels.js';
import { LocalCluster, type UpOptions } from '../cluster/local-cluster.js';
import { CLIENTS } from '../cluster/pki.js';
import { repoRoot } from '../cluster/paths.js';
import { waitFor } from '../cluster/processes.js';
import { auditEvents, writesBy, type AuditEvent } from '../e2e/audit.js';
import type { E2eContext } from '../e2e/fixture.js';
import { installCrd, startOperator, type OperatorProcess } from '../e2e/operator-harness.js';
import { customObjects, getBd, podsOf } from '../e2e/operator-harness.js';
import { watchInvariant } from '../e2e/observe.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
export const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${line}`);

/** The benchmarks' own control plane (never the e2e tests' one): .cluster/bench, started fresh. */
export async function benchCluster(nodes: number, options: Pick<UpOptions, 'nodeMonitorGraceSeconds'> = {}): Promise<LocalCluster> {
  const cluster = new LocalCluster(join(repoRoot(), '.cluster', 'bench'));
  await cluster.down(); // a leftover from an interrupted run would otherwise be reused as is
  const t0 = Date.now();
  await cluster.up({ nodes, gpusPerNode: 8, ...options, log: (l) => log(`[cluster] ${l}`) });
  log(`cluster with ${nodes} fake 8-GPU nodes up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return cluster;
}

/** A fresh namespace with its default ServiceAccount, as useE2e gives the e2e tests. */
export async function namespaceContext(cluster: LocalCluster, namespace: string): Promise<E2eContext> {
  const kc = cluster.loadKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await waitFor(`ServiceAccount default in ${namespace}`, async () => {
    await core.readNamespacedServiceAccount({ name: 'default', namespace });
    return true;
  }, 60_000);
  return { cluster, kc, core, namespace };
}

// ---------------------------------------------------------------- statistics

export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!; // nearest rank
}
export const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
export const sec = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : 'n/a');
/** "median (min–max)" in seconds. */
export const mmm = (xs: readonly number[]) => `${sec(median(xs))} (${sec(Math.min(...xs))}–${sec(Math.max(...xs))})`;

// ---------------------------------------------------------------- watches

/**
 * Watches one BloomDeployment and resolves with the receipt time of the first state (the
 * listed one or a watch event) that satisfies the predicate. Re-lists if the watch drops.
 */
export function bdReached(ctx: E2eContext, name: string, predicate: (bd: BloomDeployment) => boolean, timeoutMs: number, onEvent?: (bd: BloomDeployment, at: number) => void): Promise<{ at: number; bd: BloomDeployment }> {
  return new Promise((resolve, reject) => {
    let finished = false;
    let request: AbortController | undefined;
    let last: BloomDeployment | undefined;
    const finish = (err: Error | undefined, value?: { at: number; bd: BloomDeployment }) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      request?.abort();
      if (err) reject(err); else resolve(value!);
    };
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${name}; last status ${JSON.stringify(last?.status)}`)), timeoutMs);
    const seen = (bd: BloomDeployment) => {
      const at = Date.now();
      last = bd;
      onEvent?.(bd, at);
      if (predicate(bd)) finish(undefined, { at, bd });
    };
    const start = async (): Promise<void> => {
      while (!finished) {
        try {
          const bd = await getBd(ctx, name);
          seen(bd);
          if (finished) return;
          await new Promise<void>((done) => {
            void new Watch(ctx.kc).watch(`/apis/${API_GROUP}/${API_VERSION}/namespaces/${ctx.namespace}/${PLURAL}`,
              { fieldSelector: `metadata.name=${name}`, resourceVersion: bd.metadata.resourceVersion, allowWatchBookmarks: true },
              (type: string, obj: BloomDeployment) => { if (type === 'ADDED' || type === 'MODIFIED') seen(obj); },
              () => done()).then((r) => { request = r; if (finished) r.abort(); }, () => done());
          });
        } catch {
          await sleep(100); // not created yet, or the API server is busy
        }
      }
    };
    void start();
  });
}

/**
 * Replays the deployment's pods from a watch (observe.ts watchInvariant) and resolves with the
 * receipt time of the first pod set that satisfies the predicate. `stop` ends the watch.
 */
export function podsReached(ctx: E2eContext, bd: string, predicate: (pods: V1Pod[]) => boolean, timeoutMs: number, onSample?: (pods: V1Pod[], at: number) => void): { reached: Promise<number>; stop: () => void } {
  let stopWatch!: () => void;
  const until = new Promise<void>((r) => { stopWatch = r; });
  let resolveReached!: (t: number) => void;
  let rejectReached!: (e: Error) => void;
  let done = false;
  const reached = new Promise<number>((res, rej) => { resolveReached = res; rejectReached = rej; });
  const timer = setTimeout(() => { if (!done) { done = true; rejectReached(new Error(`timed out after ${timeoutMs} ms waiting for the pods of ${bd}`)); } }, timeoutMs);
  void watchInvariant(ctx, bd, (pods) => {
    const at = Date.now();
    onSample?.(pods, at);
    if (!done && predicate(pods)) { done = true; clearTimeout(timer); resolveReached(at); }
    return undefined;
  }, until);
  reached.catch(() => {}); // observed by the caller; never an unhandled rejection
  return { reached, stop: () => { clearTimeout(timer); stopWatch(); } };
}

export const isPodReady = (p: V1Pod) => !p.metadata?.deletionTimestamp && p.status?.phase === 'Running'
  && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
export const podEpochOf = (p: V1Pod) => Number(p.metadata?.labels?.[LABELS.epoch] ?? NaN);

// ---------------------------------------------------------------- cleanup between runs

/**
 * Deletes a BloomDeployment and (as admin, not waiting for the garbage collector) its pods, Services and
 * PodDisruptionBudgets; waits until none is left, so that the next measured run does not overlap the cleanup.
 */
export async function deleteDeployment(ctx: E2eContext, name: string): Promise<void> {
  await customObjects(ctx.kc).deleteNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ctx.namespace, plural: PLURAL, name }).catch(() => {});
  const labelSelector = `${LABELS.deployment}=${name}`;
  const policy = ctx.kc.makeApiClient(PolicyV1Api);
  await ctx.core.deleteCollectionNamespacedPod({ namespace: ctx.namespace, labelSelector }).catch(() => {});
  await policy.deleteCollectionNamespacedPodDisruptionBudget({ namespace: ctx.namespace, labelSelector }).catch(() => {});
  const services = await ctx.core.listNamespacedService({ namespace: ctx.namespace, labelSelector });
  await Promise.all(services.items.map((s) => ctx.core.deleteNamespacedService({ name: s.metadata!.name!, namespace: ctx.namespace }).catch(() => {})));
  await waitFor(`pods, Services and PDBs of ${name} gone`, async () => (await podsOf(ctx, name)).length === 0
    && (await ctx.core.listNamespacedService({ namespace: ctx.namespace, labelSelector })).items.length === 0
    && (await policy.listNamespacedPodDisruptionBudget({ namespace: ctx.namespace, labelSelector })).items.length === 0, 180_000, 250);
  await sleep(2000); // endpoint and disruption controllers settle
}

// ---------------------------------------------------------------- audit log

export const OPERATOR_USER = CLIENTS.operator.cn;

/** Writes by the operator's user in the namespace within [from, to] (ms), from the API server's audit log. */
export function operatorWrites(ctx: E2eContext, from: number, to = Infinity): AuditEvent[] {
  return writesBy(ctx.cluster.auditLog, OPERATOR_USER, from)
    .filter((e) => e.objectRef?.namespace === ctx.namespace && Date.parse(e.stageTimestamp) <= to);
}

export const resourceOf = (e: AuditEvent) => `${e.objectRef?.resource ?? '?'}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}`;

/** Count per "verb resource[/subresource]", sorted by resource then verb; failed requests counted separately. */
export function breakdown(events: readonly AuditEvent[]): Array<{ key: string; count: number; failed: number }> {
  const m = new Map<string, { count: number; failed: number }>();
  for (const e of events) {
    const k = `${e.verb} ${resourceOf(e)}`;
    const v = m.get(k) ?? { count: 0, failed: 0 };
    v.count++;
    if ((e.responseStatus?.code ?? 200) >= 400) v.failed++;
    m.set(k, v);
  }
  return [...m].map(([key, v]) => ({ key, ...v })).sort((a, b) => a.key.split(' ')[1]!.localeCompare(b.key.split(' ')[1]!) || a.key.localeCompare(b.key));
}

/**
 * Every write in the namespace within [from, to] (ms), by every user, grouped by (user, verb, resource):
 * count, failures and the first and last completion relative to `from`. Shows which component spent the time.
 */
export function auditTimeline(ctx: E2eContext, from: number, to: number): string {
  const rows = new Map<string, { n: number; failed: number; first: number; last: number }>();
  for (const e of auditEvents(ctx.cluster.auditLog, ctx.namespace)) {
    const t = Date.parse(e.stageTimestamp);
    if (e.stage !== 'ResponseComplete' || e.objectRef?.namespace !== ctx.namespace || t < from || t > to) continue;
    const user = e.user.username.replace(/^system:serviceaccount:kube-system:/, '').replace(/^system:/, '');
    const k = `${user} | ${e.verb} ${resourceOf(e)}`;
    const r = rows.get(k) ?? { n: 0, failed: 0, first: t, last: t };
    r.n++;
    if ((e.responseStatus?.code ?? 200) >= 400) r.failed++;
    r.first = Math.min(r.first, t);
    r.last = Math.max(r.last, t);
    rows.set(k, r);
  }
  return ['| user | write | count | failed | first (s) | last (s) |', '|---|---|---:|---:|---:|---:|',
    ...[...rows].sort((a, b) => a[1].first - b[1].first)
      .map(([k, r]) => `| ${k} | ${r.n} | ${r.failed} | ${sec(r.first - from)} | ${sec(r.last - from)} |`)].join('\n');
}

// ---------------------------------------------------------------- environment and concurrent load

export function versions(): Record<string, string> {
  const env = readFileSync(join(repoRoot(), 'hack', 'versions.env'), 'utf8');
  const out: Record<string, string> = {};
  for (const line of env.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** The operator build measured: the commit, and which operator sources differ from it (others edit the tree concurrently). */
export function operatorRevision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot(), encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'operator/src'], { cwd: repoRoot(), encoding: 'utf8' }).split('\n').filter(Boolean).map((l) => l.slice(3));
    return `commit ${head}${dirty.length ? ` + uncommitted changes in ${dirty.join(', ')}` : ' (operator/src clean)'}`;
  } catch {
    return 'unknown';
  }
}

export function machine(): string {
  let nproc = String(cpus().length);
  try { nproc = execFileSync('nproc', { encoding: 'utf8' }).trim(); } catch { /* keep os.cpus() */ }
  return `nproc=${nproc} (${cpus()[0]?.model ?? 'unknown CPU'}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, node ${process.version}; `
    + 'a SHARED 2-core machine: other engineers\' builds and test clusters run at the same time, so timings are noisy';
}

/** What else runs on the machine: other local control planes (by their .cluster dir), mocha/tsc processes, load average. */
export class LoadSampler {
  private readonly others = new Set<string>();
  private readonly tools = new Map<string, number>();
  private readonly loads: number[] = [];
  private timer: NodeJS.Timeout | undefined;

  start(periodMs = 5000): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), periodMs);
    this.timer.unref();
    return this;
  }

  stop(): void { clearInterval(this.timer); this.sample(); }

  sample(): void {
    this.loads.push(loadavg()[0]!);
    let ps = '';
    try { ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8', maxBuffer: 16 << 20 }); } catch { return; }
    for (const line of ps.split('\n')) {
      const pid = Number(line.trim().split(/\s+/, 1)[0]);
      if (pid === process.pid) continue;
      const dir = /kube-apiserver .*?--audit-log-path=(\S*?\.cluster\/[^/\s]+)\//.exec(line)?.[1];
      if (dir && !dir.endsWith('.cluster/bench')) this.others.add(dir.replace(/^.*\.cluster\//, '.cluster/'));
      for (const tool of ['mocha', 'tsc', 'pytest', 'bloom-operator', 'main.js run']) {
        if (line.includes(tool) && !line.includes('.cluster/bench')) this.tools.set(tool, Math.max(this.tools.get(tool) ?? 0, 1));
      }
    }
  }

  describe(): string {
    const loads = this.loads.length ? `1-min load average median ${median(this.loads).toFixed(2)}, max ${Math.max(...this.loads).toFixed(2)} (${this.loads.length} samples)` : '';
    const others = this.others.size ? `other control planes running: ${[...this.others].join(', ')}` : 'no other local control plane seen';
    const tools = this.tools.size ? `; other processes seen: ${[...this.tools.keys()].join(', ')}` : '';
    return `${loads}; ${others}${tools}`;
  }
}

// ---------------------------------------------------------------- output

/** Replaces (or appends) the section of one benchmark in test/bench/RESULTS.md, keeping the others. */
export function writeResults(bench: string, markdown: string): string {
  const file = join(repoRoot(), 'test', 'bench', 'RESULTS.md');
  const begin = `<!-- ${bench}:begin -->`;
  const end = `<!-- ${bench}:end -->`;
  const header = '# Benchmark results\n\nWritten by `npm run bench:controlplane` and `npm run bench:recovery` (test/bench/); each run replaces its own section.\n';
  let text = existsSync(file) ? readFileSync(file, 'utf8') : header;
  const section = `${begin}\n${markdown.trim()}\n${end}`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + section + text.slice(j + end.length);
  else text = `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, text);
  return file;
}

/** Keeps the operator and control-plane logs of the run (the cluster's state dir is removed by down()). */
export function keepLogs(cluster: LocalCluster, bench: string): string | undefined {
  if (!existsSync(cluster.logDir)) return undefined;
  const dest = join(repoRoot(), '.cluster', 'bench-logs', `${bench}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dest, { recursive: true });
  for (const f of readdirSync(cluster.logDir)) copyFileSync(join(cluster.logDir, f), join(dest, f));
  return dest;
}

/** Runs the benchmark body with the cluster torn down afterwards, also on error or Ctrl-C. */
export async function withCleanup(cleanup: () => Promise<void>, body: () => Promise<void>): Promise<void> {
  let cleaning: Promise<void> | undefined;
  const clean = () => (cleaning ??= cleanup().catch((e: unknown) => console.error('cleanup failed:', e)));
  const onSignal = (sig: NodeJS.Signals) => { console.error(`${sig}: cleaning up`); void clean().then(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await body();
  } finally {
    await clean();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** A benchmark's namespace, the CRD, and the real operator watching that namespace. */
export async function startBenchOperator(cluster: LocalCluster, namespace: string): Promise<{ ctx: E2eContext; operator: OperatorProcess }> {
  const ctx = await namespaceContext(cluster, namespace);
  await installCrd(cluster);
  const operator = await startOperator(cluster, { extraArgs: ['--namespace', ctx.namespace] });
  log(`operator running (log ${operator.logFile})`);
  return { ctx, operator };
}
