import { request } from 'node:https';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { CLIENTS, ensurePki, type ClientName } from './pki.js';
import { clientCertKubeconfig, writeKubeconfig } from './kubeconfig.js';
import { freePort, isAlive, readPids, startProcess, stopProcess, waitFor, writePids, type ManagedProcess } from './processes.js';
import { sourceAsset, toolPath } from './paths.js';
import { gpuNodes } from './gpu-nodes.js';

export interface UpOptions {
  /** Fake GPU nodes to create (default 4). */
  nodes?: number;
  gpusPerNode?: number;
  /**
   * kube-controller-manager's --node-monitor-grace-period (default 40 s, a kubelet's). Past a few hundred
   * simulated nodes on 2 cores its lease informer falls further behind than that during a burst: it then
   * marks healthy nodes' pods NotReady, and kwok, unlike a kubelet, never reports them Ready again.
   */
  nodeMonitorGraceSeconds?: number;
  log?: (line: string) => void;
}

interface Ports { etcd: number; etcdPeer: number; apiserver: number; kwok: number }

const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
`;

/** Pids this process is stopping on purpose: their exit is not a crash to restart. */
const stopping = new Set<number>();

/**
 * Kubernetes 1.37's gang scheduling (the Workload/PodGroup API and the scheduler's GangScheduling
 * plugin, beta and off by default) and topology-aware workload scheduling (alpha), on in every component.
 */
export const SCHEDULING_GATES = 'GenericWorkload=true,TopologyAwareWorkloadScheduling=true';

/**
 * A Kubernetes control plane on loopback, built from source by hack/toolchain.sh:
 * etcd, kube-apiserver (TLS, RBAC, service-account keys, default admission plugins + OwnerReferencesPermissionEnforcement,
 * audit log of writes), kube-controller-manager, kube-scheduler and kwok with fake GPU nodes.
 * Everything lives under `dir`: `dir/kubeconfig` is the admin kubeconfig.
 */
export class LocalCluster {
  constructor(readonly dir: string) {}

  get kubeconfig(): string { return join(this.dir, 'kubeconfig'); }
  get stateDir(): string { return join(this.dir, 'state'); }
  get pkiDir(): string { return join(this.stateDir, 'pki'); }
  get logDir(): string { return join(this.stateDir, 'logs'); }
  get auditLog(): string { return join(this.logDir, 'audit.log'); }
  private get pidFile(): string { return join(this.stateDir, 'pids.json'); }
  private get portFile(): string { return join(this.stateDir, 'ports.json'); }

  /** The kubeconfig of one of the local identities (admin, operator, ...). */
  kubeconfigFor(client: ClientName): string { return join(this.stateDir, `${client}.kubeconfig`); }

  get server(): string {
    const ports = JSON.parse(readFileSync(this.portFile, 'utf8')) as Ports;
    return `https://127.0.0.1:${ports.apiserver}`;
  }

  loadKubeConfig(client: ClientName = 'admin'): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(client === 'admin' ? this.kubeconfig : this.kubeconfigFor(client));
    return kc;
  }

  /** True when every process this cluster started is alive and the API server is ready. */
  async healthy(): Promise<boolean> {
    const pids = readPids(this.pidFile);
    if (pids.length === 0 || !pids.every((p) => isAlive(p.pid)) || !existsSync(this.portFile)) return false;
    return this.apiserverReady().catch(() => false);
  }

  async up(options: UpOptions = {}): Promise<void> {
    const log = options.log ?? (() => {});
    if (await this.healthy()) {
      log(`control plane already running (${this.server}); kubeconfig ${this.kubeconfig}`);
      return;
    }
    await this.down();
    mkdirSync(this.logDir, { recursive: true });
    ensurePki(this.pkiDir);
    const ports: Ports = { etcd: await freePort(), etcdPeer: await freePort(), apiserver: await freePort(), kwok: await freePort() };
    writeFileSync(this.portFile, JSON.stringify(ports));
    const server = `https://127.0.0.1:${ports.apiserver}`;
    for (const client of Object.keys(CLIENTS) as ClientName[]) {
      writeKubeconfig(this.kubeconfigFor(client), clientCertKubeconfig(server, this.pkiDir, client));
    }
    writeKubeconfig(this.kubeconfig, clientCertKubeconfig(server, this.pkiDir, 'admin'));
    writeFileSync(join(this.stateDir, 'audit-policy.yaml'), AUDIT_POLICY);

    const started: ManagedProcess[] = [];
    const start = (name: string, args: string[]) => {
      started.push(this.spawn(name, args));
      writePids(this.pidFile, started);
    };
    const t0 = Date.now();
    start('etcd', this.etcdArgs(ports));
    start('kube-apiserver', this.apiserverArgs(ports));
    await waitFor('kube-apiserver /readyz (see ' + join(this.logDir, 'kube-apiserver.log') + ')', () => this.apiserverReady(), 90_000, 250);
    log(`kube-apiserver ready at ${server} after ${Date.now() - t0} ms`);
    start('kube-controller-manager', this.controllerManagerArgs(options.nodeMonitorGraceSeconds ?? 40));
    start('kube-scheduler', ['--kubeconfig', this.kubeconfigFor('scheduler'), '--leader-elect=false', '--secure-port=0', `--feature-gates=${SCHEDULING_GATES}`, '--v=1']);
    start('kwok', [
      '--kubeconfig', this.kubeconfigFor('kwok'), '--manage-all-nodes=false',
      '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
      '--cidr=10.244.0.0/16', '--node-ip=10.0.0.1', '--node-lease-duration-seconds=40',
      '--server-address', `127.0.0.1:${ports.kwok}`, '--config', sourceAsset('test', 'cluster', 'kwok-stages.yaml'),
    ]);

    const kc = this.loadKubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    for (const node of gpuNodes(options.nodes ?? 4, options.gpusPerNode ?? 8)) await core.createNode({ body: node });
    if ((options.nodes ?? 4) > 0) await waitFor('the fake GPU nodes to be Ready (kwok)', async () => {
      const nodes = await core.listNode();
      return nodes.items.length > 0 && nodes.items.every((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    }, 60_000);
    await waitFor('the default ServiceAccount (kube-controller-manager)', async () => {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
      return true;
    }, 60_000);
    log(`control plane up in ${Date.now() - t0} ms: ${options.nodes ?? 4} GPU nodes; kubeconfig ${this.kubeconfig}`);
  }

  /** Stops every process this cluster started (by pid) and removes its state. */
  async down(): Promise<void> {
    const pids = readPids(this.pidFile).reverse();
    for (const p of pids) await this.stop(p);
    rmSync(this.stateDir, { recursive: true, force: true });
    rmSync(this.kubeconfig, { force: true });
  }

  /**
   * Starts a component. The scheduler and the controller-manager are supervised as a kubelet does
   * with static pods: one that exits with an error (kube-scheduler exits 1 by design when its cache
   * contradicts the API server, as after an API server restart) is started again with the same arguments.
   */
  private spawn(name: string, args: string[]): ManagedProcess {
    const supervised = name === 'kube-scheduler' || name === 'kube-controller-manager';
    const onExit = (code: number | null) => {
      if (code === 0 || code === null || stopping.has(started.pid) || !existsSync(this.pidFile)) return;
      const fresh = this.spawn(name, args);
      writePids(this.pidFile, readPids(this.pidFile).map((p) => (p.pid === started.pid ? fresh : p)));
    };
    const started = startProcess(name, toolPath(name), args, join(this.logDir, `${name}.log`), process.env, supervised ? onExit : undefined);
    return started;
  }

  private async stop(p: ManagedProcess): Promise<void> {
    stopping.add(p.pid);
    await stopProcess(p);
  }

  /** Starts one more component (a tool of .cluster/bin) as a process of this cluster: down() stops it. */
  startComponent(name: string, args: string[]): void {
    const all = readPids(this.pidFile);
    if (all.some((p) => p.name === name && isAlive(p.pid))) throw new Error(`${name} already runs in ${this.dir}`);
    writePids(this.pidFile, [...all.filter((p) => p.name !== name), this.spawn(name, args)]);
  }

  /** Whether a component started by up() or startComponent() is running. */
  runs(name: string): boolean {
    return readPids(this.pidFile).some((p) => p.name === name && isAlive(p.pid));
  }

  /** Kills and restarts one component with the same arguments (chaos tests). */
  async restart(name: 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok'): Promise<void> {
    const all = readPids(this.pidFile);
    const target = all.find((p) => p.name === name);
    if (!target) throw new Error(`${name} is not running in ${this.dir}`);
    await this.stop(target);
    const fresh = this.spawn(name, target.args);
    writePids(this.pidFile, all.map((p) => (p.name === name ? fresh : p)));
    if (name === 'kube-apiserver') await waitFor('kube-apiserver to come back', () => this.apiserverReady(), 90_000, 250);
  }

  private etcdArgs(ports: Ports): string[] {
    const peer = `http://127.0.0.1:${ports.etcdPeer}`;
    const client = `http://127.0.0.1:${ports.etcd}`;
    return [
      '--name', 'bloom-local', '--data-dir', join(this.stateDir, 'etcd'),
      '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `bloom-local=${peer}`, '--unsafe-no-fsync', '--log-level', 'warn',
    ];
  }

  private apiserverArgs(ports: Ports): string[] {
    const pki = this.pkiDir;
    return [
      `--etcd-servers=http://127.0.0.1:${ports.etcd}`,
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${ports.apiserver}`,
      `--tls-cert-file=${join(pki, 'apiserver.crt')}`, `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
      `--client-ca-file=${join(pki, 'ca.crt')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(pki, 'sa.pub')}`, `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/16', '--allow-privileged=true',
      // Since 1.36 the endpoint reconciler refuses a loopback advertise address; nothing here needs the kubernetes Service's endpoints.
      '--endpoint-reconciler-type=none',
      // on top of the default plugins: what OpenShift enforces for owner references with blockOwnerDeletion
      '--enable-admission-plugins=OwnerReferencesPermissionEnforcement',
      // MutatingAdmissionPolicy: the e2e tests add a foreign scheduling gate at admission (served as v1beta1 too);
      // the Workload/PodGroup API (scheduling.k8s.io/v1beta1, off by default) for gang and topology-aware scheduling
      `--feature-gates=ImageVolume=true,MutatingAdmissionPolicy=true,${SCHEDULING_GATES}`,
      '--runtime-config=admissionregistration.k8s.io/v1beta1=true,scheduling.k8s.io/v1beta1=true',
      `--audit-policy-file=${join(this.stateDir, 'audit-policy.yaml')}`, `--audit-log-path=${this.auditLog}`,
      '--audit-log-format=json', '--audit-log-mode=blocking',
      '--profiling=false', '--v=1',
    ];
  }

  private controllerManagerArgs(nodeMonitorGraceSeconds: number): string[] {
    const pki = this.pkiDir;
    return [
      '--kubeconfig', this.kubeconfigFor('controllerManager'), '--leader-elect=false', '--secure-port=0',
      `--service-account-private-key-file=${join(pki, 'sa.key')}`, `--root-ca-file=${join(pki, 'ca.crt')}`,
      '--use-service-account-credentials=true', '--controllers=*',
      `--node-monitor-grace-period=${nodeMonitorGraceSeconds}s`, `--feature-gates=${SCHEDULING_GATES}`, '--v=1',
    ];
  }

  private apiserverReady(): Promise<boolean> {
    const ports = JSON.parse(readFileSync(this.portFile, 'utf8')) as Ports;
    return new Promise((resolve, reject) => {
      const req = request({
        host: '127.0.0.1', port: ports.apiserver, path: '/readyz', method: 'GET', timeout: 2000,
        ca: readFileSync(join(this.pkiDir, 'ca.crt')),
        cert: readFileSync(join(this.pkiDir, 'admin.crt')), key: readFileSync(join(this.pkiDir, 'admin.key')),
      }, (res) => { res.resume(); resolve(res.statusCode === 200); });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end();
    });
  }
}
