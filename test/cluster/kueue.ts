/**
 * Kueue (built from source by hack/toolchain.sh) as one more process of a LocalCluster: its CRDs
 * applied from the same module, its manager on loopback with the pod integration, and its webhooks
 * served on 127.0.0.1 with a certificate of the cluster CA, registered by URL. Kueue manages only
 * namespaces labelled KUEUE_MANAGED_LABEL, so no other test's pods ever reach its webhooks.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import type { LocalCluster } from './local-cluster.js';
import { ensureLoopbackServingCert } from './pki.js';
import { freePort, waitFor } from './processes.js';
import { toolManifests, toolPath } from './paths.js';

const run = promisify(execFile);

export const KUEUE_NAMESPACE = 'kueue-system';
/** Namespaces with this label (value "true") are managed by Kueue; its pod webhook sees no other. */
export const KUEUE_MANAGED_LABEL = 'kueue.bloom.test/managed';
/**
 * Kueue reads its metrics certificate from this fixed path when its internal certificate management
 * is off (cmd/kueue/main.go); the harness puts the webhook's certificate there (the metrics server itself is off).
 */
const KUEUE_METRICS_CERT_DIR = '/etc/kueue/metrics/certs';

interface Webhook { name: string; clientConfig: { service?: { path?: string }; url?: string; caBundle?: string }; namespaceSelector?: unknown; rules?: Array<{ apiGroups?: string[] }> }
interface WebhookConfiguration { apiVersion: string; kind: string; metadata: { name: string }; webhooks: Webhook[] }

/**
 * Kueue's webhook configurations, for the objects this cluster serves (pods and Kueue's own kinds),
 * pointed at `https://127.0.0.1:port` and trusting `caBundle`.
 */
export function kueueWebhookConfigurations(manifest: string, port: number, caBundle: string): WebhookConfiguration[] {
  const served = (w: Webhook) => (w.rules ?? []).every((r) => (r.apiGroups ?? []).every((g) => g === '' || g === 'kueue.x-k8s.io'));
  return (yaml.loadAll(manifest) as WebhookConfiguration[]).filter(Boolean).map((c) => ({
    ...c,
    metadata: { name: `kueue-${c.metadata.name}` },
    webhooks: c.webhooks.filter(served).map((w) => ({
      ...w,
      clientConfig: { url: `https://127.0.0.1:${port}${w.clientConfig.service?.path ?? ''}`, caBundle },
      ...((w.rules ?? []).some((r) => (r.apiGroups ?? []).includes('')) ? { namespaceSelector: { matchLabels: { [KUEUE_MANAGED_LABEL]: 'true' } } } : {}),
    })),
  }));
}

function kueueConfiguration(webhookPort: number, healthPort: number, certDir: string): string {
  return yaml.dump({
    apiVersion: 'config.kueue.x-k8s.io/v1beta2',
    kind: 'Configuration',
    namespace: KUEUE_NAMESPACE,
    health: { healthProbeBindAddress: `127.0.0.1:${healthPort}` },
    metrics: { bindAddress: '0' },
    webhook: { port: webhookPort, host: '127.0.0.1', certDir },
    leaderElection: { leaderElect: false },
    internalCertManagement: { enable: false },
    manageJobsWithoutQueueName: false,
    managedJobsNamespaceSelector: { matchLabels: { [KUEUE_MANAGED_LABEL]: 'true' } },
    integrations: { frameworks: ['pod'] },
    // The visibility API would need an APIService and the aggregation layer; nothing here reads it.
    featureGates: { VisibilityOnDemand: false },
  });
}

/** Writes the file only if it is missing, atomically (several local clusters may share the path). */
function writeOnce(path: string, from: string): void {
  if (existsSync(path)) return;
  const tmp = `${path}.${process.pid}`;
  copyFileSync(from, tmp);
  renameSync(tmp, path);
}

async function kubectl(cluster: LocalCluster, args: string[], input?: string): Promise<string> {
  const child = run(toolPath('kubectl'), ['--kubeconfig', cluster.kubeconfig, ...args], { maxBuffer: 16 << 20 });
  if (input !== undefined) { child.child.stdin!.end(input); }
  return (await child).stdout;
}

/**
 * Starts Kueue on `cluster` unless it already runs there; returns once its webhooks answer
 * (a dry-run create of a ResourceFlavor passes through them).
 */
export async function ensureKueue(cluster: LocalCluster, log: (line: string) => void = () => {}): Promise<void> {
  if (cluster.runs('kueue')) return;
  const t0 = Date.now();
  const dir = join(cluster.stateDir, 'kueue');
  const certDir = join(dir, 'certs');
  mkdirSync(certDir, { recursive: true });
  const serving = ensureLoopbackServingCert(cluster.pkiDir, 'kueue-webhook');
  copyFileSync(serving.cert, join(certDir, 'tls.crt'));
  copyFileSync(serving.key, join(certDir, 'tls.key'));
  mkdirSync(KUEUE_METRICS_CERT_DIR, { recursive: true });
  writeOnce(join(KUEUE_METRICS_CERT_DIR, 'tls.crt'), serving.cert);
  writeOnce(join(KUEUE_METRICS_CERT_DIR, 'tls.key'), serving.key);

  const manifests = toolManifests('kueue');
  const crds = readdirSync(manifests).filter((f) => f.startsWith('kueue.x-k8s.io_')).map((f) => join(manifests, f));
  await kubectl(cluster, ['apply', '--server-side', ...crds.flatMap((f) => ['-f', f])]);
  await kubectl(cluster, ['wait', '--for=condition=Established', '--timeout=60s', ...crds.flatMap((f) => ['-f', f])]);
  await kubectl(cluster, ['create', 'namespace', KUEUE_NAMESPACE]).catch((e: { stderr?: string }) => {
    if (!String(e.stderr).includes('AlreadyExists')) throw e;
  });

  const webhookPort = await freePort();
  const healthPort = await freePort();
  const config = join(dir, 'config.yaml');
  writeFileSync(config, kueueConfiguration(webhookPort, healthPort, certDir));
  cluster.startComponent('kueue', [`--config=${config}`, `--kubeconfig=${cluster.kubeconfigFor('kueue')}`]);
  await waitFor(`kueue /readyz (see ${join(cluster.logDir, 'kueue.log')})`, async () => {
    const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
    return res.ok;
  }, 120_000, 500);

  const caBundle = readFileSync(join(cluster.pkiDir, 'ca.crt')).toString('base64');
  const webhooks = kueueWebhookConfigurations(readFileSync(join(manifests, 'manifests.yaml'), 'utf8'), webhookPort, caBundle);
  await kubectl(cluster, ['apply', '--server-side', '-f', '-'], webhooks.map((w) => yaml.dump(w)).join('---\n'));
  const probe = { apiVersion: 'kueue.x-k8s.io/v1beta2', kind: 'ResourceFlavor', metadata: { name: 'webhook-probe' } };
  await waitFor('kueue webhooks to answer', async () => {
    await kubectl(cluster, ['create', '--dry-run=server', '-f', '-'], JSON.stringify(probe));
    return true;
  }, 60_000, 500);
  log(`kueue up in ${Date.now() - t0} ms (webhooks on 127.0.0.1:${webhookPort})`);
}
