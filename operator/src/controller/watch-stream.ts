/**
 * One watch request, streamed line by line over node:http(s) with the KubeConfig's credentials.
 * Hand-written (not client-node's Watch) so the caller can abort it before the response headers
 * arrive: a watch whose request hangs must be cut by the informer's idle timer, not wait forever.
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** A watch that ended with an HTTP error status (the body's Status message when it had one). */
export class WatchHttpError extends Error {
  constructor(readonly code: number, message: string) { super(message); }
}

/**
 * Resolves when the server ends the stream (its timeoutSeconds), rejects on a transport error,
 * an HTTP error status or an abort. `onEvent` is called for every decoded line, BOOKMARK and
 * ERROR included; `onBytes` on every chunk (the caller's liveness signal).
 */
export async function streamWatch<T>(
  kubeConfig: KubeConfig,
  path: string,
  query: Record<string, string>,
  onEvent: (event: WatchEvent<T>) => void,
  onBytes: () => void,
  signal: AbortSignal,
): Promise<void> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster in the kubeconfig');
  const url = new URL(cluster.server.replace(/\/$/, '') + path);
  for (const [k, v] of Object.entries({ ...query, watch: 'true' })) url.searchParams.set(k, v);
  const options: https.RequestOptions = { headers: {} };
  await kubeConfig.applyToHTTPSOptions(options);
  const request = url.protocol === 'https:' ? https.request : http.request;
  return new Promise<void>((resolve, reject) => {
    const req = request(url, { ...options, method: 'GET', signal }, (res) => {
      const code = res.statusCode ?? 0;
      if (code !== 200) {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { body += d; });
        res.on('end', () => reject(new WatchHttpError(code, statusMessage(body) ?? `watch ${path}: HTTP ${code}`)));
        res.on('error', reject);
        return;
      }
      let buffered = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        onBytes();
        buffered += chunk;
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          try {
            onEvent(JSON.parse(line) as WatchEvent<T>);
          } catch (err) {
            req.destroy(err as Error);
            return;
          }
        }
      });
      res.on('end', () => resolve());
      res.on('aborted', () => reject(new Error(`watch ${path}: connection cut`)));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function statusMessage(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { message?: string }).message;
  } catch {
    return undefined;
  }
}
