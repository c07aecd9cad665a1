// The operator's metrics and its /metrics, /healthz, /readyz server, over a
// real local HTTP socket.
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  apiErrorCode,
  countGroupPhases,
  createOperatorMetrics,
  forgetDeployment,
  observeReconcile,
  recordApiError,
  recordGroupRecreations,
  setGroupPhases,
  setLeader,
  setWorkqueueDepth,
  startMetricsServer,
  timeReconcile,
  type MetricsServer,
} from '../../operator/src/metrics/index.js';

interface Reply {
  status: number;
  body: string;
  contentType: string | undefined;
}

function request(url: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, contentType: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample line of the Prometheus text format. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('operator metrics', () => {
  it('defines every metric with its labels, in its own registry', async () => {
    const m = createOperatorMetrics({ defaultMetrics: false });
    const text = await m.registry.metrics();
    for (const [name, type] of [
      ['bloom_operator_reconcile_total', 'counter'],
      ['bloom_operator_reconcile_duration_seconds', 'histogram'],
      ['bloom_operator_workqueue_depth', 'gauge'],
      ['bloom_operator_groups', 'gauge'],
      ['bloom_operator_group_restarts_total', 'counter'],
      ['bloom_operator_group_disruptions_total', 'counter'],
      ['bloom_operator_api_errors_total', 'counter'],
      ['bloom_operator_leader', 'gauge'],
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), name);
    }
    assert.equal(sample(text, 'bloom_operator_reconcile_total{result="success"}'), 0);
    assert.equal(sample(text, 'bloom_operator_reconcile_total{result="error"}'), 0);
    assert.equal(sample(text, 'bloom_operator_leader'), 0);
    assert.equal(sample(text, 'bloom_operator_workqueue_depth'), 0);
    // Two registries do not collide (nothing goes to prom-client's global one).
    createOperatorMetrics({ defaultMetrics: false });
  });

  it('records reconciles, queue depth, leadership, restarts and API errors', async () => {
    const m = createOperatorMetrics({ defaultMetrics: false });
    observeReconcile(m, 'success', 0.02);
    observeReconcile(m, 'requeue', 0.2);
    assert.equal(await timeReconcile(m, async () => 'requeue' as const), 'requeue');
    await timeReconcile(m, async () => {});
    await assert.rejects(
      timeReconcile(m, async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    setWorkqueueDepth(m, 7);
    setLeader(m, true);
    recordGroupRecreations(m, 'ml', 'bloom', 1, 0);
    recordGroupRecreations(m, 'ml', 'bloom', 2, 4);
    recordApiError(m, 'create', 'pods', { code: 403, message: 'forbidden' });
    recordApiError(m, 'create', 'pods', { code: 403 });
    recordApiError(m, 'patch', 'bloomdeployments/status', new Error('ECONNRESET'));
    const text = await m.registry.metrics();
    assert.equal(sample(text, 'bloom_operator_reconcile_total{result="success"}'), 2);
    assert.equal(sample(text, 'bloom_operator_reconcile_total{result="requeue"}'), 2);
    assert.equal(sample(text, 'bloom_operator_reconcile_total{result="error"}'), 1);
    assert.equal(sample(text, 'bloom_operator_reconcile_duration_seconds_count'), 5);
    assert.equal(sample(text, 'bloom_operator_reconcile_duration_seconds_bucket{le="0.025"}'), 4);
    assert.equal(sample(text, 'bloom_operator_workqueue_depth'), 7);
    assert.equal(sample(text, 'bloom_operator_leader'), 1);
    assert.equal(sample(text, 'bloom_operator_group_restarts_total{namespace="ml",deployment="bloom"}'), 3);
    assert.equal(sample(text, 'bloom_operator_group_disruptions_total{namespace="ml",deployment="bloom"}'), 4);
    assert.equal(sample(text, 'bloom_operator_api_errors_total{verb="create",resource="pods",code="403"}'), 2);
    assert.equal(
      sample(text, 'bloom_operator_api_errors_total{verb="patch",resource="bloomdeployments/status",code="network"}'),
      1,
    );
  });

  it('sets a series per group phase, zeroes emptied phases, and forgets deleted deployments', async () => {
    const m = createOperatorMetrics({ defaultMetrics: false });
    setGroupPhases(m, 'ml', 'bloom', countGroupPhases([{ phase: 'Ready' }, { phase: 'Ready' }, { phase: 'Starting' }]));
    let text = await m.registry.metrics();
    assert.equal(sample(text, 'bloom_operator_groups{namespace="ml",deployment="bloom",phase="Ready"}'), 2);
    assert.equal(sample(text, 'bloom_operator_groups{namespace="ml",deployment="bloom",phase="Starting"}'), 1);
    assert.equal(sample(text, 'bloom_operator_groups{namespace="ml",deployment="bloom",phase="Failed"}'), 0);
    setGroupPhases(m, 'ml', 'bloom', { Ready: 3 });
    text = await m.registry.metrics();
    assert.equal(sample(text, 'bloom_operator_groups{namespace="ml",deployment="bloom",phase="Starting"}'), 0);
    recordGroupRecreations(m, 'ml', 'bloom', 1, 1);
    setGroupPhases(m, 'ml', 'other', { Pending: 1 });
    forgetDeployment(m, 'ml', 'bloom');
    text = await m.registry.metrics();
    assert.doesNotMatch(text, /deployment="bloom"/);
    assert.equal(sample(text, 'bloom_operator_groups{namespace="ml",deployment="other",phase="Pending"}'), 1);
  });

  it('derives the code label from client-node errors', () => {
    assert.equal(apiErrorCode({ code: 409 }), '409');
    assert.equal(apiErrorCode({ statusCode: 500 }), '500');
    assert.equal(apiErrorCode({ code: 'ECONNREFUSED' }), 'network');
    assert.equal(apiErrorCode(undefined), 'network');
  });

  it('includes process metrics by default', async () => {
    const m = createOperatorMetrics();
    assert.match(await m.registry.metrics(), /^process_cpu_user_seconds_total /m);
  });
});

describe('metrics server (real socket)', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves /metrics in the Prometheus text format', async () => {
    const m = createOperatorMetrics({ defaultMetrics: false });
    setLeader(m, true);
    server = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: m.registry });
    assert.ok(server.port > 0);
    const r = await request(`${server.url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.contentType ?? '', /^text\/plain; version=0\.0\.4/);
    assert.equal(sample(r.body, 'bloom_operator_leader'), 1);
  });

  it('answers /healthz 200 while alive and /readyz from the readiness function', async () => {
    let synced = false;
    server = await startMetricsServer({ port: 0, host: '127.0.0.1', ready: () => synced });
    assert.equal((await request(`${server.url}/healthz`)).status, 200);
    const notReady = await request(`${server.url}/readyz`);
    assert.equal(notReady.status, 503);
    assert.match(notReady.body, /not ready/);
    synced = true;
    const ready = await request(`${server.url}/readyz?verbose`);
    assert.equal(ready.status, 200);
    assert.equal(ready.body, 'ok\n');
  });

  it('treats a throwing or async readiness function correctly', async () => {
    let mode: 'throw' | 'async-true' = 'throw';
    server = await startMetricsServer({
      port: 0,
      host: '127.0.0.1',
      ready: async () => {
        if (mode === 'throw') throw new Error('informer pods not synced');
        return true;
      },
    });
    const r = await request(`${server.url}/readyz`);
    assert.equal(r.status, 503);
    assert.match(r.body, /informer pods not synced/);
    mode = 'async-true';
    assert.equal((await request(`${server.url}/readyz`)).status, 200);
  });

  it('fails /healthz when the live check fails (watchdog)', async () => {
    server = await startMetricsServer({ port: 0, host: '127.0.0.1', live: () => false });
    assert.equal((await request(`${server.url}/healthz`)).status, 500);
  });

  it('answers 404 for unknown paths and /metrics without a registry, 405 for other methods, HEAD without a body', async () => {
    server = await startMetricsServer({ port: 0, host: '127.0.0.1' });
    assert.equal((await request(`${server.url}/nope`)).status, 404);
    assert.equal((await request(`${server.url}/metrics`)).status, 404);
    assert.equal((await request(`${server.url}/healthz`, 'POST')).status, 405);
    const head = await request(`${server.url}/healthz`, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  it('rejects when the port is taken, and closes cleanly', async () => {
    server = await startMetricsServer({ port: 0, host: '127.0.0.1' });
    await assert.rejects(startMetricsServer({ port: server.port, host: '127.0.0.1' }), /EADDRINUSE/);
    const url = server.url;
    await server.close();
    server = undefined;
    await assert.rejects(request(`${url}/healthz`), /ECONNREFUSED/);
  });
});
