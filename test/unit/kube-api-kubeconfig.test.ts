// apiKubeConfig against real local HTTP servers: a request to a server that
// never answers, or never finishes the body, rejects within the deadline while a
// watch on the same KubeConfig stays open past it; API calls share keep-alive
// connections, across API clients, and a changed TLS configuration gets new ones.
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import { AgentPool, apiKubeConfig } from '../../operator/src/kube/api-kubeconfig.js';

const TIMEOUT_MS = 300;

/** A plain-HTTP server (client-node talks plain HTTP only with skipTLSVerify) and a KubeConfig for it. */
async function serve(handler: http.RequestListener): Promise<{ kc: KubeConfig; requests: http.IncomingMessage[]; connections: () => number; close: () => Promise<void> }> {
  const requests: http.IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  let connections = 0;
  server.on('connection', () => { connections++; });
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
  return { kc, requests, connections: () => connections, close };
}

const never: http.RequestListener = () => {};

async function elapsed(p: Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const t = Date.now();
  const error = await p.then(() => undefined, (e: unknown) => e);
  return { ms: Date.now() - t, error };
}

describe('apiKubeConfig: request deadline', function () {
  this.timeout(10_000);

  it('rejects an API call to a server that never answers within the timeout', async () => {
    const s = await serve(never);
    try {
      const api = apiKubeConfig(s.kc, TIMEOUT_MS).makeApiClient(CoreV1Api);
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
      const api = apiKubeConfig(s.kc, TIMEOUT_MS).makeApiClient(CoreV1Api);
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
      const timed = apiKubeConfig(s.kc, TIMEOUT_MS);
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
    for (const ms of [0, -1, Number.NaN]) assert.throws(() => apiKubeConfig(kc, ms), /positive/);
  });
});

const podList: http.RequestListener = (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end('{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}');
};

describe('apiKubeConfig: connection reuse', function () {
  this.timeout(10_000);

  it('serves sequential and concurrent calls of several API clients over a few kept-alive connections', async () => {
    const s = await serve(podList);
    try {
      const kc = apiKubeConfig(s.kc, 5_000);
      const apis = [kc.makeApiClient(CoreV1Api), kc.makeApiClient(CoreV1Api)];
      for (let i = 0; i < 20; i++) await apis[i % 2]!.listNamespacedPod({ namespace: 'ns' });
      assert.equal(s.requests.length, 20);
      assert.equal(s.connections(), 1, '20 sequential calls, one connection');
      await Promise.all(Array.from({ length: 30 }, (_, i) => apis[i % 2]!.listNamespacedPod({ namespace: 'ns' })));
      assert.ok(s.connections() <= 31, `concurrent calls are never queued behind one another (${s.connections()} connections)`);
      const before = s.connections();
      for (let i = 0; i < 10; i++) await apis[0]!.listNamespacedPod({ namespace: 'ns' });
      assert.equal(s.connections(), before, 'after the burst, kept connections serve the calls');
      assert.equal(s.requests.at(-1)?.headers.authorization, 'Bearer secret-token', 'still authenticated by the kubeconfig');
    } finally {
      await s.close();
    }
  });

  it('without it, client-node opens a connection per call (what this fixes)', async () => {
    const s = await serve(podList);
    try {
      const api = s.kc.makeApiClient(CoreV1Api);
      for (let i = 0; i < 5; i++) await api.listNamespacedPod({ namespace: 'ns' });
      assert.equal(s.connections(), 5);
    } finally {
      await s.close();
    }
  });

  it('keeps one agent while the TLS options are the same, and retires it when they change (a rotated certificate)', async () => {
    const pool = new AgentPool();
    const a = pool.agentFor(new https.Agent({ ca: 'CA', cert: 'cert-1', key: 'key-1' }));
    assert.equal(pool.agentFor(new https.Agent({ ca: 'CA', cert: 'cert-1', key: 'key-1' })), a);
    assert.equal((a as https.Agent & { keepAlive: boolean }).keepAlive, true);
    const b = pool.agentFor(new https.Agent({ ca: 'CA', cert: 'cert-2', key: 'key-2' }));
    assert.notEqual(b, a);
    assert.equal((a as https.Agent & { keepAlive: boolean }).keepAlive, false, 'the old agent closes its sockets once their requests end');
    class ProxyAgent extends http.Agent {}
    const proxy = new ProxyAgent();
    assert.equal(pool.agentFor(proxy), proxy, 'a proxy agent is left as it is');
  });
});
