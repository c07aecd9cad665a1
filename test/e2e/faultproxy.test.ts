import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  ApiException, CoordinationV1Api, CoreV1Api, KubeConfig, Observable, PatchStrategy, PolicyV1Api, VersionApi, Watch,
  setHeaderOptions, type ConfigurationOptions, type V1Pod,
} from '@kubernetes/client-node';
import { useE2e } from './fixture.js';
import { requestInfo, startFaultProxyFor, type FaultProxy, type RequestRecord } from '../faultproxy/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Request options that abort the call after ms, the way a client with a deadline gives up. */
function abortAfter(ms: number): ConfigurationOptions {
  return {
    middleware: [{
      pre: (ctx) => { ctx.setSignal(AbortSignal.timeout(ms)); return new Observable(Promise.resolve(ctx)); },
      post: (res) => new Observable(Promise.resolve(res)),
    }],
    middlewareMergeStrategy: 'append',
  };
}

/** The ApiException of a rejected call, with its body parsed as the Status it should be. */
async function apiError(call: Promise<unknown>): Promise<{ code: number; headers: Record<string, string>; status: Record<string, any> }> {
  const err = await call.then(() => assert.fail('expected the call to fail'), (e: unknown) => e);
  assert.ok(err instanceof ApiException, `expected an ApiException, got ${String(err)}`);
  return { code: err.code, headers: err.headers, status: JSON.parse(err.body as string) };
}

function pod(name: string): V1Pod {
  return { metadata: { name }, spec: { containers: [{ name: 'main', image: 'busybox' }] } };
}

const classified = (r: RequestRecord) => ({
  verb: r.verb, apiGroup: r.apiGroup, resource: r.resource, subresource: r.subresource,
  namespace: r.namespace, name: r.name, watch: r.watch, status: r.status,
});

describe('fault proxy in front of the local apiserver', function () {
  this.timeout(120_000);
  const ctx = useE2e('faultproxy');
  let dir: string;
  let proxy: FaultProxy;
  let kc: KubeConfig;
  let core: CoreV1Api;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'faultproxy-'));
    proxy = await startFaultProxyFor(ctx.cluster);
    kc = new KubeConfig();
    kc.loadFromFile(proxy.kubeconfig(join(dir, 'proxy.kubeconfig')));
    core = kc.makeApiClient(CoreV1Api);
  });
  afterEach(() => proxy.clearRules());
  after(async () => {
    await proxy?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('passes get, list, create, JSON merge patch and server-side apply through unchanged', async () => {
    const namespace = ctx.namespace;
    assert.match(proxy.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'pass' }, data: { created: 'yes' } } });
    assert.equal((await core.readNamespacedConfigMap({ namespace, name: 'pass' })).data?.created, 'yes');
    const list = await core.listNamespacedConfigMap({ namespace });
    assert.ok(list.items.some((cm) => cm.metadata?.name === 'pass'));

    const merged = await core.patchNamespacedConfigMap({ namespace, name: 'pass', body: { data: { merged: 'yes' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    assert.deepEqual(merged.data, { created: 'yes', merged: 'yes' });
    const applied = await core.patchNamespacedConfigMap({
      namespace, name: 'pass', fieldManager: 'faultproxy-e2e', force: true,
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'pass' }, data: { applied: 'yes' } },
    }, setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply));
    assert.equal(applied.data?.applied, 'yes');
    assert.ok(applied.metadata?.managedFields?.some((f) => f.manager === 'faultproxy-e2e' && f.operation === 'Apply'),
      'the apply-patch content type reached the apiserver');
    // what the admin sees directly: the proxy wrote to the real cluster
    assert.deepEqual((await ctx.core.readNamespacedConfigMap({ namespace, name: 'pass' })).data, { created: 'yes', merged: 'yes', applied: 'yes' });

    assert.equal(proxy.count({ resource: 'configmaps', namespace, status: 201, verb: 'create' }), 1);
    assert.equal(proxy.count({ resource: 'configmaps', namespace, status: 200, verb: 'patch', name: 'pass' }), 2);
    assert.equal(proxy.count({ namespace, fault: 'status' }), 0);
  });

  it('answers 503 Status to the first 2 service lists, then passes the third', async () => {
    const namespace = ctx.namespace;
    const rule = proxy.addRule({ match: { verb: 'list', resource: 'services', namespace }, times: 2, action: { kind: 'status', code: 503 } });
    for (let i = 0; i < 2; i++) {
      const { code, status } = await apiError(core.listNamespacedService({ namespace }));
      assert.equal(code, 503);
      assert.equal(status.kind, 'Status');
      assert.equal(status.apiVersion, 'v1');
      assert.equal(status.status, 'Failure');
      assert.equal(status.code, 503);
      assert.equal(status.reason, 'ServiceUnavailable');
      assert.match(status.message, /injected/);
    }
    assert.equal((await core.listNamespacedService({ namespace })).kind, 'ServiceList');
    assert.equal(rule.hits, 2);
    assert.equal(proxy.count({ verb: 'list', resource: 'services', namespace, status: 503, fault: 'status' }), 2);
    assert.equal(proxy.count({ verb: 'list', resource: 'services', namespace, status: 200 }), 1);
  });

  it('answers 429 TooManyRequests with Retry-After', async () => {
    const namespace = ctx.namespace;
    proxy.addRule({ match: { verb: 'get', resource: 'configmaps', name: 'kube-root-ca.crt' }, action: { kind: 'status', code: 429, retryAfterSeconds: 7 } });
    const { code, headers, status } = await apiError(core.readNamespacedConfigMap({ namespace, name: 'kube-root-ca.crt' }));
    assert.equal(code, 429);
    assert.equal(headers['retry-after'], '7');
    assert.equal(status.reason, 'TooManyRequests');
    assert.deepEqual(status.details, { name: 'kube-root-ca.crt', kind: 'configmaps', retryAfterSeconds: 7 });
    // the rule matches by name only: another configmap passes
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'not-limited' } } });
    assert.equal((await core.readNamespacedConfigMap({ namespace, name: 'not-limited' })).metadata?.name, 'not-limited');
  });

  it('delays matching requests by at least the delay, and only while the rule is there', async () => {
    const namespace = ctx.namespace;
    const read = async () => {
      const t0 = performance.now();
      await core.readNamespacedServiceAccount({ namespace, name: 'default' });
      return performance.now() - t0;
    };
    const rule = proxy.addRule({ match: { resource: 'serviceaccounts', name: 'default' }, action: { kind: 'delay', ms: 800 } });
    const delayed = await read();
    assert.ok(delayed >= 800, `delayed read took ${delayed.toFixed(0)} ms`);
    rule.remove();
    const direct = await read();
    assert.ok(direct < 400, `read without the rule took ${direct.toFixed(0)} ms`);
    assert.equal(rule.hits, 1);
  });

  it('hangs a request until the client gives up', async () => {
    const namespace = ctx.namespace;
    proxy.addRule({ match: { verb: 'list', resource: 'configmaps', namespace }, action: { kind: 'hang' } });
    const from = proxy.requests.length;
    const t0 = performance.now();
    const err = await core.listNamespacedConfigMap({ namespace }, abortAfter(300)).then(() => assert.fail('a hung list answered'), (e: Error) => e);
    const waited = performance.now() - t0;
    assert.equal(err.name, 'AbortError');
    assert.ok(waited >= 300 && waited < 3000, `aborted after ${waited.toFixed(0)} ms`);
    const hung = proxy.requests.slice(from);
    assert.equal(hung.length, 1);
    assert.equal(hung[0]!.fault, 'hang');
    assert.equal(hung[0]!.status, undefined);
  });

  it('frees hanging requests on close()', async () => {
    const own = await startFaultProxyFor(ctx.cluster);
    const ownKc = new KubeConfig();
    ownKc.loadFromFile(own.kubeconfig(join(dir, 'own.kubeconfig')));
    own.addRule({ match: { resource: 'pods' }, action: { kind: 'hang' } });
    const hanging = ownKc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ctx.namespace }).then(() => 'answered', (e: Error) => e);
    await sleep(300);
    assert.equal(own.count({ resource: 'pods', fault: 'hang' }), 1, 'the request reached the proxy');
    const t0 = performance.now();
    await own.close();
    const outcome = await Promise.race([hanging, sleep(2000).then(() => 'still hanging')]);
    assert.ok(outcome instanceof Error, `after close(): ${String(outcome)}`);
    assert.ok(performance.now() - t0 < 2000);
  });

  it('cuts a pod watch abruptly after afterMs, with the events before the cut delivered promptly', async () => {
    const namespace = ctx.namespace;
    const rule = proxy.addRule({ match: { verb: 'watch', resource: 'pods', namespace }, action: { kind: 'cutWatch', afterMs: 2000 } });
    const events: { type: string; name: string; at: number }[] = [];
    let ended: { err: unknown; at: number } | undefined;
    const t0 = performance.now();
    const controller = await new Watch(kc).watch(`/api/v1/namespaces/${namespace}/pods`, {},
      (type, obj: V1Pod) => events.push({ type, name: obj.metadata?.name ?? '', at: performance.now() - t0 }),
      (err) => { ended = { err, at: performance.now() - t0 }; });
    try {
      await ctx.core.createNamespacedPod({ namespace, body: pod('watched') });
      const created = performance.now() - t0;
      while (!ended && performance.now() - t0 < 6000) await sleep(20);
      assert.ok(ended, 'the watch ended');
      // node-fetch's word for a chunked body that stopped without its last chunk; a clean end would be done(null)
      assert.equal((ended.err as NodeJS.ErrnoException | null)?.code, 'ERR_STREAM_PREMATURE_CLOSE');
      const added = events.find((e) => e.type === 'ADDED' && e.name === 'watched');
      assert.ok(added, `events before the cut: ${JSON.stringify(events)}`);
      assert.ok(added.at - created < 1000, `ADDED arrived ${(added.at - created).toFixed(0)} ms after the create`);
      assert.ok(ended.at >= 1900 && ended.at < 4000, `watch ended after ${ended.at.toFixed(0)} ms`);
      assert.ok(added.at < ended.at);
    } finally {
      controller.abort();
    }
    assert.equal(rule.hits, 1);
    const [cut] = proxy.requests.filter((r) => r.fault === 'cutWatch');
    assert.deepEqual(classified(cut!), { verb: 'watch', apiGroup: '', resource: 'pods', subresource: '', namespace, name: '', watch: true, status: 200 });
    // a list of the same resource is no watch: the rule leaves it alone
    await core.listNamespacedPod({ namespace });
    assert.equal(rule.hits, 1);
  });

  it('injects a random fault with its probability, passing the others on', async () => {
    const namespace = ctx.namespace;
    const never = proxy.addRule({ match: { resource: 'endpoints', namespace }, action: { kind: 'random', probability: 0, action: { kind: 'status', code: 500 } } });
    await core.listNamespacedEndpoints({ namespace });
    const always = proxy.addRule({ match: { resource: 'endpoints', namespace }, action: { kind: 'random', probability: 1, action: { kind: 'status', code: 500 } } });
    const { code, status } = await apiError(core.listNamespacedEndpoints({ namespace }));
    assert.equal(code, 500);
    assert.equal(status.reason, 'InternalError');
    assert.deepEqual([never.hits, always.hits], [0, 1]);
  });

  it('classifies requests like the apiserver: verb, group, resource, subresource, namespace, name', async () => {
    const namespace = ctx.namespace;
    const from = proxy.requests.length;
    await ctx.core.createNamespacedPod({ namespace, body: pod('classified') });
    await core.listNamespacedPod({ namespace });
    await core.readNamespacedPod({ namespace, name: 'classified' });
    await core.readNamespacedPodStatus({ namespace, name: 'classified' });
    await core.readNamespace({ name: namespace });
    await kc.makeApiClient(CoordinationV1Api).createNamespacedLease({ namespace, body: { metadata: { name: 'lease' }, spec: {} } });
    await kc.makeApiClient(PolicyV1Api).listNamespacedPodDisruptionBudget({ namespace });
    await core.deleteCollectionNamespacedConfigMap({ namespace, labelSelector: 'nothing=here' });
    await core.deleteNamespacedPod({ namespace, name: 'classified' });
    await core.createNamespacedEvent({ namespace, body: { metadata: { name: 'ev' }, involvedObject: { kind: 'Pod', name: 'classified', namespace } } });
    const controller = await new Watch(kc).watch(`/api/v1/namespaces/${namespace}/configmaps`, { fieldSelector: 'metadata.name=one' }, () => {}, () => {});
    controller.abort();
    await kc.makeApiClient(VersionApi).getCode();

    const base = { apiGroup: '', subresource: '', namespace, name: '', watch: false, status: 200 };
    assert.deepEqual(proxy.requests.slice(from).map(classified), [
      { ...base, verb: 'list', resource: 'pods' },
      { ...base, verb: 'get', resource: 'pods', name: 'classified' },
      { ...base, verb: 'get', resource: 'pods', subresource: 'status', name: 'classified' },
      { ...base, verb: 'get', resource: 'namespaces', name: namespace },
      { ...base, verb: 'create', apiGroup: 'coordination.k8s.io', resource: 'leases', status: 201 },
      { ...base, verb: 'list', apiGroup: 'policy', resource: 'poddisruptionbudgets' },
      { ...base, verb: 'deletecollection', resource: 'configmaps' },
      { ...base, verb: 'delete', resource: 'pods', name: 'classified' },
      { ...base, verb: 'create', resource: 'events', status: 201 },
      { ...base, verb: 'watch', resource: 'configmaps', name: 'one', watch: true },
      { ...base, verb: 'get', resource: '', namespace: '' },
    ]);
    assert.equal(proxy.requests.at(-1)!.resourceRequest, false);
    assert.equal(proxy.requests.at(-1)!.path, '/version');
  });
});

describe('fault proxy request classification (paths only)', () => {
  const info = (method: string, url: string) => {
    const { verb, resource, subresource, namespace, name, watch } = requestInfo(method, url);
    return { verb, resource, subresource, namespace, name, watch };
  };

  it('follows the apiserver for the legacy watch prefix, watch query values and namespace subresources', () => {
    assert.deepEqual(info('GET', '/api/v1/watch/namespaces/a/pods/p'), { verb: 'watch', resource: 'pods', subresource: '', namespace: 'a', name: 'p', watch: true });
    assert.deepEqual(info('GET', '/api/v1/pods?watch=1'), { verb: 'watch', resource: 'pods', subresource: '', namespace: '', name: '', watch: true });
    assert.deepEqual(info('GET', '/api/v1/pods?watch=false'), { verb: 'list', resource: 'pods', subresource: '', namespace: '', name: '', watch: false });
    assert.deepEqual(info('PUT', '/api/v1/namespaces/a/finalize'), { verb: 'update', resource: 'namespaces', subresource: 'finalize', namespace: 'a', name: 'a', watch: false });
    assert.deepEqual(info('PATCH', '/apis/bloom.example/v1/namespaces/a/bloomdeployments/b/status'),
      { verb: 'patch', resource: 'bloomdeployments', subresource: 'status', namespace: 'a', name: 'b', watch: false });
    assert.deepEqual(info('GET', '/apis/apps/v1'), { verb: 'get', resource: '', subresource: '', namespace: '', name: '', watch: false });
  });
});
