/**
 * The informer's list-watch protocol against a scripted HTTP server that speaks the apiserver's
 * watch wire format (a unit test of the protocol; the real apiserver behind the fault proxy is in
 * test/e2e/faults.test.ts).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, type KubernetesListObject, type V1ConfigMap } from '@kubernetes/client-node';
import { Informer, type InformerEventType } from '../../operator/src/controller/informer.js';
import { createLogger } from '../../operator/src/log.js';

type Reply = (res: http.ServerResponse) => void;
const cm = (name: string, rv: string): V1ConfigMap => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });
const line = (type: string, object: unknown) => `${JSON.stringify({ type, object })}\n`;

/** A server whose watch requests are answered by the scripted replies, in order (then held open). */
async function fakeApiserver(watches: Reply[]) {
  const seen: string[] = [];
  const queries: URLSearchParams[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    queries.push(url.searchParams);
    seen.push(`rv=${url.searchParams.get('resourceVersion')} bookmarks=${url.searchParams.get('allowWatchBookmarks')}`);
    const reply = watches.shift();
    res.writeHead(200, { 'content-type': 'application/json' });
    if (reply) reply(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
  });
  return { kc, seen, queries, close: () => { server.closeAllConnections(); return new Promise((r) => server.close(r)); } };
}

const until = async (what: string, ok: () => boolean, ms = 3_000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

function informer(kc: KubeConfig, lists: Array<() => KubernetesListObject<V1ConfigMap>>, selectors: { labelSelector?: string; fieldSelector?: string } = {}) {
  let listed = 0;
  const events: string[] = [];
  const inf = new Informer<V1ConfigMap>({
    name: 'configmaps', kubeConfig: kc, path: '/api/v1/namespaces/ns/configmaps', log: createLogger('error'), ...selectors,
    backoff: { initialMs: 5, maxMs: 20 },
    list: async () => lists[Math.min(listed++, lists.length - 1)]!(),
  });
  inf.onEvent((o, type: InformerEventType) => events.push(`${type} ${o.metadata?.name}`));
  return { inf, events, lists: () => listed };
}

const list = (rv: string, ...items: V1ConfigMap[]) => () => ({ apiVersion: 'v1', kind: 'ConfigMapList', metadata: { resourceVersion: rv }, items });
const failing = () => { throw Object.assign(new Error('injected'), { code: 503 }); };

describe('Informer (list-watch with client-go reflector semantics)', () => {
  it('is not synced until a LIST succeeds; failed LISTs are retried with back-off', async () => {
    const api = await fakeApiserver([]);
    const { inf, lists } = informer(api.kc, [failing, failing, list('10', cm('a', '10'))]);
    inf.start();
    assert.equal(inf.synced, false);
    await inf.waitForSync(AbortSignal.timeout(2_000));
    assert.equal(lists(), 3);
    assert.deepEqual(inf.list('ns').map((o) => o.metadata?.name), ['a']);
    await until('the watch opened', () => api.seen.length === 1);
    assert.deepEqual(api.seen, ['rv=10 bookmarks=true']);
    await inf.stop();
    await api.close();
  });

  it('waitForSync rejects with the last LIST error when the deadline passes', async () => {
    const api = await fakeApiserver([]);
    const { inf } = informer(api.kc, [failing]);
    inf.start();
    await assert.rejects(inf.waitForSync(AbortSignal.timeout(100)), /configmaps did not sync: injected/);
    await inf.stop();
    await api.close();
  });

  it('applies events, follows bookmarks, and re-watches from the last resourceVersion after a cut (no re-list)', async () => {
    const api = await fakeApiserver([
      (res) => { res.write(line('ADDED', cm('b', '11'))); res.write(line('BOOKMARK', { metadata: { resourceVersion: '15' } })); setTimeout(() => res.destroy(), 50); },
      (res) => { res.write(line('MODIFIED', cm('a', '16'))); res.write(line('DELETED', cm('b', '17'))); res.end(); },
    ]);
    const { inf, events, lists } = informer(api.kc, [list('10', cm('a', '10'))]);
    inf.start();
    await until('three watches', () => api.seen.length === 3);
    assert.deepEqual(api.seen, ['rv=10 bookmarks=true', 'rv=15 bookmarks=true', 'rv=17 bookmarks=true']);
    assert.equal(lists(), 1, 'a cut or a closed watch never re-lists');
    assert.deepEqual(events, ['add a', 'add b', 'update a', 'delete b']);
    assert.equal(inf.get('a', 'ns')?.metadata?.resourceVersion, '16');
    await inf.stop();
    await api.close();
  });

  it('watches with its label and field selectors', async () => {
    const api = await fakeApiserver([]);
    const selectors = { labelSelector: 'app=x', fieldSelector: 'spec.nodeName!=,status.phase!=Failed' };
    const { inf } = informer(api.kc, [list('10')], selectors);
    inf.start();
    await until('a watch', () => api.queries.length === 1);
    assert.deepEqual([api.queries[0]!.get('labelSelector'), api.queries[0]!.get('fieldSelector')], [selectors.labelSelector, selectors.fieldSelector]);
    await inf.stop();
    await api.close();
  });

  it('stores listed and watched objects without managedFields or the last-applied annotation', async () => {
    const heavy = (name: string, rv: string): V1ConfigMap => ({
      metadata: {
        name, namespace: 'ns', resourceVersion: rv,
        managedFields: [{ manager: 'kubectl', operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1: { 'f:data': {} } }],
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":true}', keep: 'me' },
      },
      data: { k: 'v' },
    });
    const api = await fakeApiserver([(res) => { res.write(line('ADDED', heavy('b', '11'))); }]);
    const { inf } = informer(api.kc, [list('10', heavy('a', '10'))]);
    inf.start();
    await until('the watched object', () => inf.get('b', 'ns') !== undefined);
    for (const name of ['a', 'b']) {
      const o = inf.get(name, 'ns')!;
      assert.equal(o.metadata?.managedFields, undefined);
      assert.deepEqual(o.metadata?.annotations, { keep: 'me' });
      assert.deepEqual(o.data, { k: 'v' });
    }
    await inf.stop();
    await api.close();
  });

  it('re-lists on 410 Gone and notifies deletes of objects that vanished meanwhile; stays synced throughout', async () => {
    const api = await fakeApiserver([
      (res) => { res.write(line('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' })); res.end(); },
    ]);
    const { inf, events, lists } = informer(api.kc, [list('10', cm('a', '10'), cm('b', '10')), list('30', cm('a', '20'))]);
    inf.start();
    await until('the re-list', () => lists() === 2 && api.seen.length === 2);
    assert.deepEqual(api.seen, ['rv=10 bookmarks=true', 'rv=30 bookmarks=true']);
    assert.deepEqual(events, ['add a', 'add b', 'delete b', 'update a']);
    assert.equal(inf.synced, true);
    await inf.stop();
    await api.close();
  });

  it('cuts a watch that stays silent past idleMs and resumes from its resourceVersion', async () => {
    const api = await fakeApiserver([() => {}]);
    let listed = 0;
    const inf = new Informer<V1ConfigMap>({
      name: 'configmaps', kubeConfig: api.kc, path: '/api/v1/namespaces/ns/configmaps', log: createLogger('error'),
      backoff: { initialMs: 5, maxMs: 20 }, idleMs: 100, list: async () => { listed++; return list('10')(); },
    });
    inf.start();
    await until('a second watch', () => api.seen.length === 2, 2_000);
    assert.deepEqual(api.seen, ['rv=10 bookmarks=true', 'rv=10 bookmarks=true']);
    assert.equal(listed, 1);
    await inf.stop();
    await api.close();
  });
});
