// A small node:http server for the operator's probes and metrics:
//   /metrics  Prometheus text from the registry (404 when none is given)
//   /healthz  200 while the process is alive (and the optional live() check passes)
//   /readyz   200 when ready() says so (e.g. informers synced), else 503
// The operator runs one on --metrics-port and one on --health-port, or both
// on one port; each serves all three paths.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsServerOptions {
  /** Port to listen on; 0 picks a free one (see MetricsServer.port). */
  port: number;
  /** Address to bind; default all interfaces. */
  host?: string;
  /** Registry served on /metrics. */
  registry?: Registry;
  /** Readiness for /readyz; default always ready. Throwing counts as not ready. */
  ready?: () => boolean | Promise<boolean>;
  /** Extra liveness for /healthz (e.g. an informer watchdog); default always live. */
  live?: () => boolean | Promise<boolean>;
}

export interface MetricsServer {
  server: http.Server;
  /** The bound port (useful with port 0). */
  port: number;
  /** Base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

async function check(fn: (() => boolean | Promise<boolean>) | undefined): Promise<{ ok: boolean; error?: string }> {
  if (!fn) return { ok: true };
  try {
    return { ok: (await fn()) === true };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

/** The request handler, exported for embedding in another server. */
export function metricsHandler(opts: Omit<MetricsServerOptions, 'port' | 'host'>): http.RequestListener {
  return (req, res) => {
    void (async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD');
        return send(res, 405, 'method not allowed\n');
      }
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      switch (path) {
        case '/healthz':
        case '/livez': {
          const live = await check(opts.live);
          return live.ok ? send(res, 200, 'ok\n') : send(res, 500, `not alive${live.error ? `: ${live.error}` : ''}\n`);
        }
        case '/readyz': {
          const ready = await check(opts.ready);
          return ready.ok ? send(res, 200, 'ok\n') : send(res, 503, `not ready${ready.error ? `: ${ready.error}` : ''}\n`);
        }
        case '/metrics': {
          if (!opts.registry) return send(res, 404, 'no metrics here\n');
          try {
            return send(res, 200, await opts.registry.metrics(), opts.registry.contentType);
          } catch (err) {
            return send(res, 500, `cannot collect metrics: ${err instanceof Error ? err.message : String(err)}\n`);
          }
        }
        default:
          return send(res, 404, 'not found\n');
      }
    })().catch(() => {
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  };
}

/** Starts the server; resolves once it listens. */
export function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const server = http.createServer(metricsHandler(opts));
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      const host = !opts.host || opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;
      resolve({
        server,
        port,
        url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            server.closeAllConnections();
          }),
      });
    });
  });
}
