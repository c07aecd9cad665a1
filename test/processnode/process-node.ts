/**
 * A process node: a dev/test stand-in for a kubelet on the local control plane (never part of the
 * operator). It registers a Node (NOT managed by kwok) with GPU capacity, keeps it Ready with a
 * node Lease and status heartbeats, and for every pod bound to it starts the pod's container as a
 * local process: the worker image's entrypoint is the repository's .venv/bin/bloom-worker, env is
 * the pod's, hostPath volumes are host directories (container paths in env and args are rewritten),
 * and each pod gets its own loopback address (127.X.Y.Z, what a CNI would give) that the worker
 * binds to. Pod and Service DNS names (as CoreDNS would answer them) go into a managed /etc/hosts block. It reports phase,
 * container state, restarts and readiness (the readinessProbe's httpGet, polled every second) to the
 * API server, and on deletion stops the process (SIGTERM, grace period, SIGKILL) and finalizes the pod.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  CoordinationV1Api, CoreV1Api, PatchStrategy, V1MicroTime, setHeaderOptions,
  type KubeConfig, type V1Lease, type V1Node, type V1Pod, type V1Service,
} from '@kubernetes/client-node';
import { editHosts, withBlock, withoutStaleBlocks, DEFAULT_HOSTS_FILE } from './hosts-file.js';
import { dnsRecords, type DnsPod, exitCodeOf, gatesOpen, launchPlan, podStatus, PodConfigError, readinessTarget, type ContainerRecord, type LaunchPlan } from './pod-plan.js';
import { Reflector } from './reflector.js';

export const PROCESS_NODE_LABEL = 'bloom.dev/process-node';
export const PROCESS_NODE_TAINT = { key: PROCESS_NODE_LABEL, value: 'true', effect: 'NoSchedule' } as const;

export interface ProcessNodeOptions {
  kc: KubeConfig;
  name: string;
  /** nvidia.com/gpu capacity (default 8). */
  gpus?: number;
  /** Per-pod directories, logs and pid files. */
  stateDir: string;
  /** Directory holding bloom-worker (the repository's .venv/bin). */
  binDir: string;
  /** hostPath volumes resolve under this directory (default: the real root). */
  hostPathRoot?: string;
  hostsFile?: string;
  clusterDomain?: string;
  /** Taint bloom.dev/process-node=true:NoSchedule so that only pods that tolerate it land here (default true). */
  taint?: boolean;
  /** Extra node labels, e.g. an NVLink clique shared by several process nodes. */
  labels?: Record<string, string>;
  /** First two octets of the pod addresses, e.g. "127.91" (default: derived from the node name). */
  ipPrefix?: string;
  /** Env every process starts with (an image's ENV). */
  baseEnv?: Record<string, string>;
  /** Delete the Node object on stop (default true). */
  deleteNodeOnStop?: boolean;
  log?: (line: string) => void;
  probeIntervalMs?: number;
  leaseDurationSeconds?: number;
}

interface PodState {
  key: string;
  uid: string;
  namespace: string;
  name: string;
  ip?: string;
  startTime: Date;
  dir: string;
  logFile: string;
  restartPolicy: string;
  container: ContainerRecord;
  plan?: LaunchPlan;
  child?: ChildProcess;
  exited?: Promise<void>;
  restartTimer?: NodeJS.Timeout;
  /** Last status patched, to write only differences. */
  reported?: string;
  terminating: boolean;
  pod: V1Pod;
}

export interface PodInfo {
  namespace: string;
  name: string;
  uid: string;
  ip?: string;
  pid?: number;
  state: string;
  ready: boolean;
  restartCount: number;
  exitCode?: number;
  log: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const status = (err: unknown) => (err as { code?: number }).code;
const mergePatch = () => setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const strategicMergePatch = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

/** Start time of a process (field 22 of /proc/PID/stat), to tell a pid from a reused one. */
function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

export class ProcessNode {
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly pods: Reflector<V1Pod>;
  private readonly services: Reflector<V1Service>;
  private readonly states = new Map<string, PodState>();
  private readonly syncing = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly hostsFile: string;
  private readonly domain: string;
  private readonly ipPrefix: string;
  private nextIp: number;
  private nodeUid = '';
  private stopped = false;
  private dnsTimer: NodeJS.Timeout | undefined;
  private lastDns = '';
  ready = false;

  constructor(private readonly o: ProcessNodeOptions) {
    this.core = o.kc.makeApiClient(CoreV1Api);
    this.coordination = o.kc.makeApiClient(CoordinationV1Api);
    this.hostsFile = o.hostsFile ?? DEFAULT_HOSTS_FILE;
    this.domain = o.clusterDomain ?? 'cluster.local';
    const h = createHash('sha256').update(o.name).digest();
    this.ipPrefix = o.ipPrefix ?? `127.${64 + (h[0]! % 128)}`;
    // start where a previous run of this node is unlikely to have been: a stale DNS answer never hits a new pod
    this.nextIp = Math.floor(Date.now() / 1000) % 60_000;
    this.pods = new Reflector<V1Pod>({
      kc: o.kc, path: '/api/v1/pods', fieldSelector: `spec.nodeName=${o.name}`,
      list: () => this.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${o.name}` }),
      onChange: (key) => this.kick(key), log: (l) => this.log(l),
    });
    this.services = new Reflector<V1Service>({
      kc: o.kc, path: '/api/v1/services',
      list: () => this.core.listServiceForAllNamespaces(),
      onChange: () => this.scheduleDns(), log: (l) => this.log(l),
    });
  }

  get name(): string { return this.o.name; }
  private get hostIP(): string { return '127.0.0.1'; }
  private log(line: string): void { (this.o.log ?? ((l: string) => console.log(l)))(`[${this.o.name}] ${line}`); }

  /** Registers the node, starts the heartbeat, the pod and Service watches. */
  async start(): Promise<void> {
    mkdirSync(join(this.o.stateDir, 'pids'), { recursive: true });
    this.killOrphans();
    try {
      editHosts(this.hostsFile, (t) => withBlock(withoutStaleBlocks(t, alive), this.o.name, new Map()));
    } catch (err) {
      throw new Error(`the process node publishes pod DNS names in ${this.hostsFile} (read by the system resolver, so by the ` +
        `workers and torch's TCPStore) and cannot write it: ${(err as Error).message}. Run it as root (or in a container/VM where you are).`);
    }
    await this.registerNode();
    await this.renewLease();
    this.timers.push(setInterval(() => { void this.heartbeat(); }, 10_000));
    this.timers.push(setInterval(() => { void this.probeAll(); }, this.o.probeIntervalMs ?? 1000));
    await this.services.start();
    await this.pods.start();
    this.ready = true;
    this.log(`registered; pods get addresses ${this.ipPrefix}.x.y; DNS in ${this.hostsFile}`);
  }

  /** Stops every process (SIGTERM, then SIGKILL after 5 s), removes the DNS block and (by default) the Node. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ready = false;
    for (const t of this.timers) clearInterval(t);
    if (this.dnsTimer) clearTimeout(this.dnsTimer);
    this.pods.stop();
    this.services.stop();
    await Promise.all([...this.states.values()].map((st) => this.kill(st, 5)));
    try { editHosts(this.hostsFile, (t) => withBlock(t, this.o.name, new Map())); } catch (e) { this.log(`hosts cleanup failed: ${String(e)}`); }
    if (this.o.deleteNodeOnStop ?? true) {
      await this.core.deleteNode({ name: this.o.name }).catch(() => {});
      await this.coordination.deleteNamespacedLease({ name: this.o.name, namespace: 'kube-node-lease' }).catch(() => {});
    }
  }

  /** What runs here, for tests and debugging (served by the CLI at /pods). */
  list(): PodInfo[] {
    return [...this.states.values()].map((st) => ({
      namespace: st.namespace, name: st.name, uid: st.uid, ...(st.ip ? { ip: st.ip } : {}),
      ...(st.container.pid && st.container.state === 'running' ? { pid: st.container.pid } : {}),
      state: st.container.state, ready: st.container.ready, restartCount: st.container.restartCount,
      ...(st.container.exitCode !== undefined ? { exitCode: st.container.exitCode } : {}), log: st.logFile,
    }));
  }

  // ---- node, lease, heartbeat -------------------------------------------------------------

  private nodeObject(): V1Node {
    const gpus = String(this.o.gpus ?? 8);
    const capacity = { cpu: '64', memory: '256Gi', pods: '110', 'ephemeral-storage': '100Gi', 'nvidia.com/gpu': gpus };
    return {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: this.o.name,
        labels: {
          'kubernetes.io/hostname': this.o.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64',
          [PROCESS_NODE_LABEL]: 'true', 'nvidia.com/gpu.present': 'true', 'nvidia.com/gpu.count': gpus,
          ...this.o.labels,
        },
        annotations: { [PROCESS_NODE_LABEL]: 'dev/test node: pods run as local processes (test/processnode), no GPUs' },
      },
      spec: this.o.taint === false ? {} : { taints: [{ ...PROCESS_NODE_TAINT }] },
      status: { capacity, allocatable: capacity },
    };
  }

  private nodeStatus(): V1Node['status'] {
    const now = new Date();
    const cond = (type: string, st: string, reason: string, message: string) =>
      ({ type, status: st, reason, message, lastHeartbeatTime: now, lastTransitionTime: this.readySince ?? now });
    const { capacity, allocatable } = this.nodeObject().status!;
    return {
      capacity, allocatable,
      conditions: [
        cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'process node'),
        cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'process node'),
        cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'process node'),
        cond('Ready', 'True', 'KubeletReady', 'process node is posting ready status'),
      ],
      addresses: [{ type: 'InternalIP', address: this.hostIP }, { type: 'Hostname', address: this.o.name }],
      nodeInfo: {
        architecture: 'amd64', bootID: this.bootID, containerRuntimeVersion: 'process://local', kernelVersion: '',
        kubeProxyVersion: '', kubeletVersion: 'v1.0.0-processnode', machineID: hostname(), operatingSystem: 'linux',
        osImage: 'bloom-operator process node (dev/test)', systemUUID: this.o.name,
      },
    };
  }

  private readySince: Date | undefined;
  private readonly bootID = randomUUID();

  private async registerNode(): Promise<void> {
    let node: V1Node;
    try {
      node = await this.core.createNode({ body: this.nodeObject() });
    } catch (err) {
      if (status(err) !== 409) throw err;
      const desired = this.nodeObject();
      node = await this.core.patchNode({ name: this.o.name, body: { metadata: { labels: desired.metadata!.labels, annotations: desired.metadata!.annotations }, spec: { taints: desired.spec!.taints ?? null } } }, mergePatch());
    }
    this.nodeUid = node.metadata?.uid ?? '';
    this.readySince = new Date();
    await this.core.patchNodeStatus({ name: this.o.name, body: { status: this.nodeStatus() } }, mergePatch());
  }

  private async renewLease(): Promise<void> {
    const name = this.o.name;
    const namespace = 'kube-node-lease';
    const spec = { holderIdentity: name, leaseDurationSeconds: this.o.leaseDurationSeconds ?? 40, renewTime: new V1MicroTime(Date.now()) };
    try {
      const lease = await this.coordination.readNamespacedLease({ name, namespace });
      await this.coordination.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: { ...lease.spec, ...spec } } });
    } catch (err) {
      if (status(err) !== 404) throw err;
      const body: V1Lease = {
        metadata: { name, namespace, ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name, uid: this.nodeUid }] },
        spec,
      };
      await this.coordination.createNamespacedLease({ namespace, body });
    }
  }

  private async heartbeat(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.renewLease();
      await this.core.patchNodeStatus({ name: this.o.name, body: { status: this.nodeStatus() } }, mergePatch());
    } catch (err) {
      if (status(err) === 404) {
        this.log('node object is gone; registering again');
        await this.registerNode().catch((e) => this.log(`register failed: ${String(e)}`));
      } else {
        this.log(`heartbeat failed: ${String((err as Error).message ?? err).slice(0, 200)}`);
      }
    }
  }

  // ---- pods -------------------------------------------------------------------------------

  private kick(key: string): void {
    if (this.stopped) return;
    if (this.syncing.has(key)) {
      this.dirty.add(key);
      return;
    }
    const run = this.sync(key)
      .catch((err) => this.log(`sync ${key} failed: ${String((err as Error).message ?? err).slice(0, 300)}`))
      .finally(() => {
        this.syncing.delete(key);
        if (this.dirty.delete(key)) this.kick(key);
      });
    this.syncing.set(key, run);
  }

  private async sync(key: string): Promise<void> {
    const pod = this.pods.get(key);
    let st = this.states.get(key);
    if (st && (!pod || pod.metadata?.uid !== st.uid)) {
      // gone from the API server (or replaced by a pod of the same name): nothing left to report to
      await this.kill(st, 0);
      this.forget(st);
      st = undefined;
    }
    if (!pod) return;
    if (pod.metadata?.deletionTimestamp) {
      if (st) {
        st.terminating = true;
        const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
        await this.kill(st, grace);
        await this.report(st).catch(() => {});
      }
      // the kubelet's final delete: the pod object goes once its containers are gone
      await this.core.deleteNamespacedPod({
        name: pod.metadata.name!, namespace: pod.metadata.namespace!, gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid! } },
      }).catch((err) => { if (status(err) !== 404 && status(err) !== 409) throw err; });
      if (st) this.forget(st);
      return;
    }
    if (!st) {
      const phase = pod.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') return;
      st = this.newState(key, pod);
      this.states.set(key, st);
      if ((pod.status?.containerStatuses ?? []).some((c) => c.state?.running || c.state?.terminated)) {
        // started by an earlier run of this node, whose processes died with it
        Object.assign(st.container, { state: 'terminated', exitCode: 137, reason: 'ContainerStatusUnknown', message: 'the process node restarted; the process is gone', finishedAt: new Date() });
      } else {
        this.tryStart(st);
      }
    }
    st.pod = pod;
    this.scheduleDns();
    await this.report(st);
  }

  private newState(key: string, pod: V1Pod): PodState {
    const uid = pod.metadata!.uid!;
    const dir = join(this.o.stateDir, 'pods', `${pod.metadata!.namespace}_${pod.metadata!.name}_${uid.slice(0, 8)}`);
    mkdirSync(dir, { recursive: true });
    const c = pod.spec!.containers[0]!;
    return {
      key, uid, namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, startTime: new Date(), dir,
      logFile: join(dir, `${c.name}.log`), restartPolicy: pod.spec?.restartPolicy ?? 'Always', terminating: false, pod,
      container: { name: c.name, image: c.image ?? '', state: 'waiting', waitingReason: 'ContainerCreating', restartCount: 0, ready: false },
    };
  }

  private allocateIp(): string {
    const used = new Set([...this.states.values()].map((s) => s.ip));
    for (let i = 0; i < 65_000; i++) {
      const n = (this.nextIp++ % 65_000) + 256; // skip x.0.y
      const ip = `${this.ipPrefix}.${Math.floor(n / 256) % 256}.${n % 256 || 1}`;
      if (!used.has(ip) && !ip.endsWith('.255')) return ip;
    }
    throw new Error('no free pod address');
  }

  private startContainer(st: PodState): void {
    const pod = st.pod;
    st.ip ??= this.allocateIp();
    let plan: LaunchPlan;
    try {
      plan = launchPlan(pod, {
        binDir: this.o.binDir, podIP: st.ip, hostIP: this.hostIP, nodeName: this.o.name,
        hostPathRoot: this.o.hostPathRoot ?? '', podDir: st.dir, baseEnv: this.o.baseEnv ?? {},
      });
      for (const m of plan.mounts) {
        if (m.type === 'emptyDir' || m.type === 'DirectoryOrCreate') mkdirSync(m.hostPath, { recursive: true });
        else if (!existsSync(m.hostPath)) throw new PodConfigError(`hostPath ${m.hostPath} of volume ${m.volume} does not exist`);
        else if (m.type === 'Directory' && !statSync(m.hostPath).isDirectory()) throw new PodConfigError(`hostPath ${m.hostPath} of volume ${m.volume} is not a directory`);
      }
    } catch (err) {
      if (!(err instanceof PodConfigError)) throw err;
      Object.assign(st.container, { state: 'waiting', waitingReason: 'CreateContainerConfigError', message: err.message });
      this.log(`${st.key}: ${err.message} (retrying in 5 s)`);
      // as a kubelet retries mounts: a hostPath staged late still starts the pod
      st.restartTimer = setTimeout(() => {
        if (st.terminating || this.stopped || this.states.get(st.key) !== st || st.container.state !== 'waiting') return;
        this.tryStart(st);
        this.kick(st.key);
      }, 5000);
      return;
    }
    st.plan = plan;
    const fd = openSync(st.logFile, 'a');
    writeFileSync(fd, `--- ${new Date().toISOString()} process node starts ${plan.command} ${plan.args.join(' ')} (pod ip ${st.ip})\n`);
    let child: ChildProcess;
    try {
      child = spawn(plan.command, plan.args, { cwd: plan.cwd, env: plan.env, stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    const startedAt = new Date();
    st.child = child;
    st.exited = new Promise<void>((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null, error?: string) => {
        if (st.child !== child) return resolve();
        st.child = undefined;
        const exitCode = error ? 128 : exitCodeOf(code, signal);
        Object.assign(st.container, {
          state: 'terminated', exitCode, finishedAt: new Date(), ready: false,
          reason: error ? 'StartError' : exitCode === 0 ? 'Completed' : 'Error',
          ...(error ? { message: error } : {}),
        });
        rmSync(join(this.o.stateDir, 'pids', `${st.uid}.json`), { force: true });
        this.log(`${st.key}: process ${child.pid ?? '-'} exited with ${exitCode}${signal ? ` (${signal})` : ''}`);
        this.scheduleDns();
        this.maybeRestart(st);
        this.kick(st.key);
        resolve();
      };
      child.once('exit', (code, signal) => done(code, signal));
      child.once('error', (err) => done(null, null, err.message));
    });
    if (child.pid !== undefined) {
      writeFileSync(join(this.o.stateDir, 'pids', `${st.uid}.json`), JSON.stringify({ pid: child.pid, start: procStart(child.pid), pod: st.key }));
      Object.assign(st.container, { state: 'running', startedAt, pid: child.pid, ready: false, waitingReason: undefined, message: undefined, exitCode: undefined, reason: undefined, finishedAt: undefined });
      this.log(`${st.key}: started pid ${child.pid} at ${st.ip}`);
    }
    this.scheduleDns();
  }

  private tryStart(st: PodState): void {
    try {
      this.startContainer(st);
    } catch (err) {
      Object.assign(st.container, { state: 'waiting', waitingReason: 'RunContainerError', message: String((err as Error).message ?? err) });
      this.log(`${st.key}: cannot start: ${String(err)}`);
    }
  }

  /** restartPolicy Always / OnFailure: start again after a back-off (1 s doubling to 30 s), counting restarts. */
  private maybeRestart(st: PodState): void {
    const c = st.container;
    if (st.terminating || this.stopped) return;
    if (!(st.restartPolicy === 'Always' || (st.restartPolicy === 'OnFailure' && c.exitCode !== 0))) return;
    const delay = Math.min(30_000, 1000 * 2 ** Math.min(5, c.restartCount));
    st.restartTimer = setTimeout(() => {
      if (st.terminating || this.stopped || this.states.get(st.key) !== st) return;
      c.lastTerminated = { exitCode: c.exitCode ?? 0, reason: c.reason ?? 'Error', ...(c.startedAt ? { startedAt: c.startedAt } : {}), finishedAt: c.finishedAt ?? new Date() };
      c.restartCount += 1;
      this.tryStart(st);
      this.kick(st.key);
    }, delay);
  }

  /** SIGTERM to the process group, SIGKILL after graceSeconds; resolves once the process is gone. */
  private async kill(st: PodState, graceSeconds: number): Promise<void> {
    if (st.restartTimer) clearTimeout(st.restartTimer);
    st.terminating = true;
    this.scheduleDns();
    const child = st.child;
    if (!child || child.pid === undefined) return;
    const signal = (sig: NodeJS.Signals) => {
      try { process.kill(-child.pid!, sig); } catch { try { child.kill(sig); } catch { /* gone */ } }
    };
    if (graceSeconds > 0) {
      signal('SIGTERM');
      const deadline = Date.now() + graceSeconds * 1000;
      while (st.child === child && Date.now() < deadline) await sleep(50);
    }
    if (st.child === child) signal('SIGKILL');
    await st.exited;
    // helpers the worker spawned share its process group
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* none left */ }
  }

  private forget(st: PodState): void {
    if (st.restartTimer) clearTimeout(st.restartTimer);
    if (this.states.get(st.key) === st) this.states.delete(st.key);
    this.scheduleDns();
  }

  private async report(st: PodState): Promise<void> {
    const body = podStatus({
      gatesOpen: gatesOpen(st.pod),
      ...(st.ip ? { podIP: st.ip } : {}), hostIP: this.hostIP, startTime: st.startTime, container: st.container, restartPolicy: st.restartPolicy,
    });
    const text = JSON.stringify(body);
    if (text === st.reported) return;
    try {
      // Strategic merge (conditions by type), as a kubelet's status manager: controllers' conditions (readiness gates) stay.
      await this.core.patchNamespacedPodStatus({ name: st.name, namespace: st.namespace, body: { status: body } }, strategicMergePatch);
      st.reported = text;
    } catch (err) {
      if (status(err) === 404) return;
      throw err;
    }
  }

  private async probeAll(): Promise<void> {
    await Promise.all([...this.states.values()].map(async (st) => {
      const c = st.container;
      if (c.state !== 'running' || !st.ip) return;
      const target = readinessTarget(st.pod);
      let ready: boolean;
      if (target === 'none') ready = true;
      else if (target === 'unsupported') ready = true;
      else {
        try {
          const res = await fetch(`http://${st.ip}:${target.port}${target.path}`, { signal: AbortSignal.timeout(2000) });
          await res.arrayBuffer().catch(() => undefined);
          ready = res.status >= 200 && res.status < 400;
        } catch {
          ready = false;
        }
      }
      if (c.state !== 'running' || ready === c.ready) return;
      c.ready = ready;
      c.readySince = new Date();
      this.log(`${st.key}: ${ready ? 'ready' : 'not ready'}`);
      this.scheduleDns();
      this.kick(st.key);
    }));
  }

  // ---- DNS --------------------------------------------------------------------------------

  private scheduleDns(): void {
    if (this.stopped || this.dnsTimer) return;
    this.dnsTimer = setTimeout(() => {
      this.dnsTimer = undefined;
      this.writeDns();
    }, 20);
  }

  /** Names of this node's running pods and the Services that select them (see dnsRecords), into the hosts block. */
  private writeDns(): void {
    const pods: DnsPod[] = [...this.states.values()].filter((s) => s.container.state === 'running' && s.ip && !s.terminating).map((s) => ({
      name: s.name, namespace: s.namespace, labels: s.pod.metadata?.labels ?? {}, ip: s.ip!, ready: s.container.ready && gatesOpen(s.pod),
      ...(s.pod.spec?.hostname ? { hostname: s.pod.spec.hostname } : {}), ...(s.pod.spec?.subdomain ? { subdomain: s.pod.spec.subdomain } : {}),
    }));
    const records = dnsRecords(this.services.cache.values(), pods, this.domain);
    const text = JSON.stringify([...records.entries()].sort());
    if (text === this.lastDns) return;
    try {
      editHosts(this.hostsFile, (t) => withBlock(t, this.o.name, records));
      this.lastDns = text;
    } catch (err) {
      this.log(`cannot write ${this.hostsFile}: ${String(err)}`);
      setTimeout(() => this.scheduleDns(), 500);
    }
  }

  /** Processes a previous run of this node left behind (it was SIGKILLed): killed before anything starts. */
  private killOrphans(): void {
    const dir = join(this.o.stateDir, 'pids');
    for (const f of readdirSync(dir)) {
      try {
        const { pid, start } = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { pid: number; start?: string };
        if (alive(pid) && procStart(pid) === start) {
          this.log(`killing orphan process ${pid} of an earlier run`);
          try { process.kill(-pid, 'SIGKILL'); } catch { process.kill(pid, 'SIGKILL'); }
        }
      } catch { /* unreadable: drop */ }
      rmSync(join(dir, f), { force: true });
    }
  }
}

