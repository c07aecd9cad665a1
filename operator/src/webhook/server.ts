/**
 * The eviction webhook's HTTPS server (see eviction.ts): answers every AdmissionReview at once
 * (allowed; the PodDisruptionBudget decides), then marks a group pod whose eviction was asked for
 * with the drain-requested annotation, which every operator replica's informer sees. A mark that
 * fails is only logged: `kubectl drain` retries the eviction every few seconds.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { LABELS } from '../groups/labels.js';
import { DRAIN_REQUESTED_ANNOTATION } from '../lifecycle/observe.js';
import type { Logger } from '../log.js';
import { reviewEviction, type AdmissionReview } from './eviction.js';

export const EVICTION_WEBHOOK_PATH = '/validate-eviction';
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface WebhookServerOptions {
  port: number;
  host?: string;
  /** Directory with tls.crt and tls.key (a Secret mounted by the chart). */
  certDir: string;
  kubeConfig: KubeConfig;
  log: Logger;
}

export interface WebhookServer {
  port: number;
  close(): Promise<void>;
}

async function markDrainRequested(core: CoreV1Api, namespace: string, name: string, log: Logger): Promise<void> {
  try {
    const pod = await core.readNamespacedPod({ name, namespace });
    if (!pod.metadata?.labels?.[LABELS.deployment] || pod.metadata.annotations?.[DRAIN_REQUESTED_ANNOTATION]) return;
    const body = { metadata: { annotations: { [DRAIN_REQUESTED_ANNOTATION]: new Date().toISOString() } } };
    await core.patchNamespacedPod({ name, namespace, body }, mergePatch);
    log.info('eviction asked for a group pod; its group will be replaced', { pod: `${namespace}/${name}` });
  } catch (err) {
    log.warn('could not mark a pod whose eviction was asked for', { pod: `${namespace}/${name}`, error: String((err as Error)?.message ?? err) });
  }
}

export function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const tls = { cert: readFileSync(join(options.certDir, 'tls.crt')), key: readFileSync(join(options.certDir, 'tls.key')) };
  const server = https.createServer(tls, (req, res) => {
    const reply = (code: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method !== 'POST' || new URL(req.url ?? '/', 'https://x').pathname !== EVICTION_WEBHOOK_PATH) return reply(404, { error: 'not found' });
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => { raw += chunk; });
    req.on('end', () => {
      let decision;
      try {
        decision = reviewEviction(JSON.parse(raw) as AdmissionReview);
      } catch (err) {
        return reply(400, { error: String((err as Error).message ?? err) });
      }
      reply(200, decision.review);
      if (decision.pod) void markDrainRequested(core, decision.pod.namespace, decision.pod.name, options.log);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve({
      port: (server.address() as AddressInfo).port,
      close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
    }));
  });
}
