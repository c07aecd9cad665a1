/**
 * Pure parts of the process node (dev/test only): how a pod becomes a local process (command,
 * env, host paths), what status the node reports for it, and which DNS names its endpoints get.
 */
import { join, posix } from 'node:path';
import type { V1ContainerStatus, V1Pod, V1Service, V1PodCondition, V1PodStatus, V1Probe } from '@kubernetes/client-node';

/** The worker image's entrypoint (images/worker/Dockerfile: ENTRYPOINT ["bloom-worker"]). */
export const WORKER_ENTRYPOINT = 'bloom-worker';

export interface LaunchOptions {
  /** Directory holding `bloom-worker` (the repository's .venv/bin). */
  binDir: string;
  /** Pod IP given to this pod (127.x.y.z on loopback, what a CNI would give). */
  podIP: string;
  hostIP: string;
  nodeName: string;
  /** hostPath volumes resolve under this directory ('' or '/' = the real root). */
  hostPathRoot: string;
  /** Per-pod directory for emptyDir volumes and the working directory. */
  podDir: string;
  /** Env every process starts with before the pod's (what an image's ENV gives). */
  baseEnv: Record<string, string>;
}

export interface LaunchPlan {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** mountPath -> host directory, longest first. */
  mounts: Array<{ mountPath: string; hostPath: string; volume: string; type?: string }>;
}

export class PodConfigError extends Error {}

/** Env values that name a pod's loopback interface. */
const POD_LOOPBACK = new Set(['127.0.0.1', 'localhost']);

/** hostPath joined under the root (a chroot for hostPath volumes, so the demo writes nothing outside the repo). */
export function hostPathUnder(root: string, path: string): string {
  return root === '' || root === '/' ? path : join(root, path);
}

/** Rewrites container paths under a volume's mountPath to the host directory backing it. */
export function rewritePaths(value: string, mounts: LaunchPlan['mounts']): string {
  for (const m of mounts) {
    const mp = m.mountPath.replace(/\/+$/, '') || '/';
    if (mp === '/') continue;
    const escaped = mp.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const re = new RegExp(`(^|[=:,\\s])${escaped}(?=$|/|[:,\\s])`, 'g');
    if (re.test(value)) return value.replace(re, (_m, pre: string) => pre + m.hostPath);
  }
  return value;
}

function fieldValue(pod: V1Pod, path: string, opts: LaunchOptions): string {
  const meta = pod.metadata ?? {};
  const label = /^metadata\.labels\['(.+)'\]$/.exec(path);
  if (label) return meta.labels?.[label[1]!] ?? '';
  const annotation = /^metadata\.annotations\['(.+)'\]$/.exec(path);
  if (annotation) return meta.annotations?.[annotation[1]!] ?? '';
  switch (path) {
    case 'metadata.name': return meta.name ?? '';
    case 'metadata.namespace': return meta.namespace ?? '';
    case 'metadata.uid': return meta.uid ?? '';
    case 'spec.nodeName': return opts.nodeName;
    case 'spec.serviceAccountName': return pod.spec?.serviceAccountName ?? 'default';
    case 'status.podIP': case 'status.podIPs': return opts.podIP;
    case 'status.hostIP': case 'status.hostIPs': return opts.hostIP;
    default: throw new PodConfigError(`fieldRef ${path} is not supported by the process node`);
  }
}

/** $(VAR) references to earlier variables are expanded, $$(VAR) escapes, as the kubelet does. */
function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) =>
    m === '$$' ? '$' : name !== undefined && name in env ? env[name]! : m);
}

/** The process that stands for the pod's first container. Throws PodConfigError for what it cannot run. */
export function launchPlan(pod: V1Pod, opts: LaunchOptions): LaunchPlan {
  const container = pod.spec?.containers?.[0];
  if (!container) throw new PodConfigError('pod has no containers');
  if ((pod.spec?.containers?.length ?? 0) > 1) throw new PodConfigError('the process node runs single-container pods only');
  const volumes = new Map((pod.spec?.volumes ?? []).map((v) => [v.name, v]));
  const mounts: LaunchPlan['mounts'] = [];
  for (const vm of container.volumeMounts ?? []) {
    const v = volumes.get(vm.name);
    if (!v) throw new PodConfigError(`volumeMount ${vm.name} names no volume`);
    const sub = vm.subPath ?? '';
    if (v.hostPath) {
      mounts.push({ mountPath: vm.mountPath, hostPath: join(hostPathUnder(opts.hostPathRoot, v.hostPath.path), sub), volume: vm.name, ...(v.hostPath.type ? { type: v.hostPath.type } : {}) });
    } else if (v.emptyDir) {
      if (vm.mountPath === '/dev/shm') continue; // the host's /dev/shm is shared memory already
      mounts.push({ mountPath: vm.mountPath, hostPath: join(opts.podDir, 'volumes', vm.name, sub), volume: vm.name, type: 'emptyDir' });
    } else if (v.projected) {
      // the service-account token volume every pod gets by default: an empty directory (nothing is
      // projected; a process here reaches no API server through in-cluster config anyway)
      mounts.push({ mountPath: vm.mountPath, hostPath: join(opts.podDir, 'volumes', vm.name, sub), volume: vm.name, type: 'emptyDir' });
    } else {
      throw new PodConfigError(`volume ${vm.name}: only hostPath, emptyDir and (empty) projected volumes are supported by the process node`);
    }
  }
  mounts.sort((a, b) => b.mountPath.length - a.mountPath.length);

  const env: Record<string, string> = { ...opts.baseEnv };
  env.PATH = [opts.binDir, env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'].join(':');
  env.HOSTNAME = pod.spec?.hostname ?? pod.metadata?.name ?? '';
  // what a CNI gives a pod: its own address; the worker binds every server to it
  env.BLOOM_BIND_ADDRESS = opts.podIP;
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = rewritePaths(expand(e.value, env), mounts);
    else if (e.valueFrom?.fieldRef) env[e.name] = fieldValue(pod, e.valueFrom.fieldRef.fieldPath, opts);
    else if (e.valueFrom) throw new PodConfigError(`env ${e.name}: only value and fieldRef are supported by the process node`);
    else env[e.name] = '';
  }
  if ((container.envFrom ?? []).length > 0) throw new PodConfigError('envFrom is not supported by the process node');
  // Pods here share the host's loopback: the pod's own address stands for its loopback (a single-pod
  // group's MASTER_ADDR=127.0.0.1 must reach its own rank 0, never another pod's).
  for (const [name, value] of Object.entries(env)) if (POD_LOOPBACK.has(value)) env[name] = opts.podIP;

  // command replaces the image's ENTRYPOINT; without it the worker image's entrypoint runs with args
  const argv = [...(container.command ?? [WORKER_ENTRYPOINT]), ...(container.args ?? [])].map((a) => rewritePaths(expand(a, env), mounts));
  // the worker image's bloom-worker is the repository's .venv/bin/bloom-worker; other commands resolve on PATH
  const command = posix.basename(argv[0]!) === WORKER_ENTRYPOINT ? join(opts.binDir, WORKER_ENTRYPOINT) : argv[0]!;
  return { command, args: argv.slice(1), env, cwd: opts.podDir, mounts };
}

/** What the process node knows about the one container of a pod. */
export interface ContainerRecord {
  name: string;
  image: string;
  state: 'waiting' | 'running' | 'terminated';
  waitingReason?: string;
  message?: string;
  startedAt?: Date;
  finishedAt?: Date;
  exitCode?: number;
  reason?: string;
  restartCount: number;
  lastTerminated?: { exitCode: number; reason: string; startedAt?: Date; finishedAt: Date };
  ready: boolean;
  readySince?: Date;
  pid?: number;
}

export interface PodRecordView {
  /** Whether every readiness gate of the pod has its condition True (a kubelet's Ready requires it). */
  gatesOpen?: boolean;
  podIP?: string;
  hostIP: string;
  startTime: Date;
  scheduledAt?: Date;
  container: ContainerRecord;
  restartPolicy: string;
}

/** Exit code as a container runtime reports it: 128 + signal number for a signalled process. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const numbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15 };
  return 128 + (signal ? numbers[signal] ?? 0 : 0);
}

/** The pod status a kubelet would report for this record. */
export function podStatus(r: PodRecordView): V1PodStatus {
  const c = r.container;
  const terminal = c.state === 'terminated' && r.restartPolicy !== 'Always' && !(r.restartPolicy === 'OnFailure' && c.exitCode !== 0);
  const phase = c.state === 'running' || (c.state === 'terminated' && !terminal) ? 'Running'
    : c.state === 'terminated' ? (c.exitCode === 0 ? 'Succeeded' : 'Failed') : 'Pending';
  const since = (d: Date | undefined) => d ?? r.startTime;
  const cond = (type: string, status: boolean, at: Date | undefined, reason?: string): V1PodCondition =>
    ({ type, status: status ? 'True' : 'False', lastTransitionTime: since(at), ...(reason && !status ? { reason } : {}) });
  const containersReady = c.state === 'running' && c.ready;
  const readyAt = containersReady ? c.readySince : (c.finishedAt ?? c.startedAt ?? r.startTime);
  const ready = containersReady && (r.gatesOpen ?? true);
  const notReadyReason = c.state !== 'running' ? 'PodCompleted' : containersReady ? 'ReadinessGatesNotReady' : 'ContainersNotReady';
  const cs: V1ContainerStatus = {
    name: c.name,
    image: c.image,
    imageID: '',
    containerID: c.pid ? `process://${c.pid}` : '',
    ready: containersReady,
    started: c.state === 'running',
    restartCount: c.restartCount,
    state: c.state === 'running' ? { running: { startedAt: c.startedAt! } }
      : c.state === 'terminated'
        ? { terminated: { exitCode: c.exitCode ?? 0, reason: c.reason ?? (c.exitCode === 0 ? 'Completed' : 'Error'), ...(c.message ? { message: c.message } : {}), startedAt: c.startedAt ?? r.startTime, finishedAt: c.finishedAt ?? new Date() } }
        : { waiting: { reason: c.waitingReason ?? 'ContainerCreating', ...(c.message ? { message: c.message } : {}) } },
    lastState: c.lastTerminated ? { terminated: { exitCode: c.lastTerminated.exitCode, reason: c.lastTerminated.reason, startedAt: c.lastTerminated.startedAt ?? r.startTime, finishedAt: c.lastTerminated.finishedAt } } : {},
  };
  const status: V1PodStatus = {
    phase,
    hostIP: r.hostIP,
    hostIPs: [{ ip: r.hostIP }],
    startTime: r.startTime,
    conditions: [
      cond('PodReadyToStartContainers', c.state !== 'waiting' || c.waitingReason !== 'ContainerCreating', r.startTime),
      cond('Initialized', true, r.startTime),
      cond('Ready', ready, readyAt, notReadyReason),
      cond('ContainersReady', containersReady, readyAt, c.state === 'running' ? 'ContainersNotReady' : 'PodCompleted'),
      cond('PodScheduled', true, r.scheduledAt ?? r.startTime),
    ],
    containerStatuses: [cs],
  };
  if (r.podIP) {
    status.podIP = r.podIP;
    status.podIPs = [{ ip: r.podIP }];
  }
  return status;
}

/** Whether each of the pod's readiness gates has its condition True (conditions set by controllers, kept by the kubelet). */
export function gatesOpen(pod: V1Pod): boolean {
  return (pod.spec?.readinessGates ?? []).every((g) => (pod.status?.conditions ?? []).some((c) => c.type === g.conditionType && c.status === 'True'));
}

/** The readiness check of a container: its readinessProbe's httpGet (port by name or number), if any. */
export function readinessTarget(pod: V1Pod): { port: number; path: string } | 'none' | 'unsupported' {
  const container = pod.spec?.containers?.[0];
  const probe: V1Probe | undefined = container?.readinessProbe;
  if (!probe) return 'none';
  const http = probe.httpGet;
  if (!http) return 'unsupported';
  const raw = http.port as unknown;
  const port = typeof raw === 'number' ? raw
    : /^\d+$/.test(String(raw)) ? Number(raw)
      : container?.ports?.find((p) => p.name === raw)?.containerPort;
  if (port === undefined) return 'unsupported';
  return { port, path: http.path ?? '/' };
}

/** A pod this node runs, as DNS sees it. */
export interface DnsPod {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  hostname?: string;
  subdomain?: string;
  ip: string;
  ready: boolean;
}

const selects = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/**
 * Cluster DNS for this node's pods, as CoreDNS answers it (from Services and the pods they select;
 * EndpointSlices cannot carry loopback addresses, so they are not used):
 * `<hostname>.<subdomain>.<ns>.svc.<domain>` for a pod whose subdomain is a headless Service that
 * selects it (ready, or any with publishNotReadyAddresses), and `<service>.<ns>.svc.<domain>` for a
 * Service with a ready pod here. There is no kube-proxy, so a Service name resolves to one ready pod
 * (the first by name) rather than to its ClusterIP.
 */
export function dnsRecords(services: Iterable<V1Service>, pods: readonly DnsPod[], domain: string): Map<string, string> {
  const records = new Map<string, string>();
  const sorted = [...pods].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const svc of services) {
    const ns = svc.metadata?.namespace;
    const name = svc.metadata?.name;
    if (!ns || !name) continue;
    const headless = svc.spec?.clusterIP === 'None';
    const notReadyToo = svc.spec?.publishNotReadyAddresses === true;
    const members = sorted.filter((p) => p.namespace === ns && selects(svc.spec?.selector, p.labels) && (p.ready || notReadyToo));
    const svcName = `${name}.${ns}.svc.${domain}`;
    if (headless) for (const p of members) if (p.hostname && p.subdomain === name) records.set(`${p.hostname}.${svcName}`, p.ip);
    const first = members[0];
    if (first) records.set(svcName, first.ip);
  }
  return records;
}
