// withRequestTimeout against real local HTTP servers that never answer, or
// never finish the body: the API call rejects within the deadline, while a
// watch on the same KubeConfig stays open past it.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import { withRequestTimeout } from '../../operator/src/kube/request-timeout.js';

const TIMEOUT_MS = 300;

/** A plain-HTTP server (client-node talks plain HTTP only with skipTLSVerify) and a KubeConfig for it. */
async function serve(handler: http.RequestListener): Promise<{ kc: KubeConfig; requests: http.IncomingMessage[]; close: () => Promise<void> }> {
  const requests: http.IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    { name: 'local', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
    { name: 'u', token: 'secret-token' },
  );
  const close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return { kc, requests, close };
}

const never: http.RequestListener = () => {};

async function elapsed(p: Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const t = Date.now();
  const error = await p.then(() => undefined, (e: unknown) => e);
  return { ms: Date.now() - t, error };
}

describe('withRequestTimeout', function () {
  this.timeout(10_000);

  it('rejects an API call to a server that never answers within the timeout', async () => {
    const s = await serve(never);
    try {
      const api = withRequestTimeout(s.kc, TIMEOUT_MS).makeApiClient(CoreV1Api);
      const { ms, error } = await elapsed(api.listNamespacedPod({ namespace: 'ns' }));
      assert.ok(error instanceof Error, `the call rejects (got ${String(error)})`);
      assert.match(error.message, /abort/i);
      assert.ok(ms >= TIMEOUT_MS - 20 && ms < TIMEOUT_MS + 500, `rejected after ${ms} ms (timeout ${TIMEOUT_MS} ms)`);
      assert.equal(s.requests[0]?.headers.authorization, 'Bearer secret-token', 'still authenticated by the kubeconfig');
    } finally {
      await s.close();
    }
  });

  it('rejects a response whose body never ends', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"kind":"PodList","items":[');
    });
    try {
      const api = withRequestTimeout(s.kc, TIMEOUT_MS).makeApiClient(CoreV1Api);
      const { ms, error } = await elapsed(api.listNamespacedPod({ namespace: 'ns' }));
      assert.ok(error instanceof Error, `the call rejects (got ${String(error)})`);
      assert.ok(ms < TIMEOUT_MS + 500, `rejected after ${ms} ms`);
    } finally {
      await s.close();
    }
  });

  it('leaves the KubeConfig it was given, and watches, without a deadline', async () => {
    const s = await serve((req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      if (req.url?.includes('watch=true')) res.write('');
    });
    try {
      const timed = withRequestTimeout(s.kc, TIMEOUT_MS);
      let watchDone: unknown = 'open';
      const watch = await new Watch(timed).watch('/api/v1/pods', {}, () => {}, (err) => { watchDone = err ?? 'closed'; });
      let plainSettled = false;
      void s.kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'ns' }).finally(() => { plainSettled = true; }).catch(() => {});
      await new Promise((r) => setTimeout(r, TIMEOUT_MS * 3));
      assert.equal(watchDone, 'open', 'the watch outlives the request timeout');
      assert.equal(plainSettled, false, 'the original KubeConfig has no deadline');
      watch.abort();
    } finally {
      await s.close();
    }
  });

  it('refuses a timeout that is not a positive number', () => {
    const kc = new KubeConfig();
    for (const ms of [0, -1, Number.NaN]) assert.throws(() => withRequestTimeout(kc, ms), /positive/);
  });
});
