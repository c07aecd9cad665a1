/**
 * Serving end to end: the real operator creates a TP=4 group of rank pods, the process node
 * (test/processnode) runs them as real bloom-worker processes with their own loopback addresses and
 * pod DNS, and the group's answer must equal a TP=1 worker's answer on the same INT8 weights.
 * Then a rank is SIGKILLed (the group is recreated with a new epoch and answers the same again),
 * and the deployment is scaled to two groups (both answer the same).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { BloomDeploymentManifest } from '../../operator/src/api/types.js';
import { LABELS } from '../../operator/src/groups/labels.js';
import { waitFor } from '../cluster/processes.js';
import {
  complete, ensureTinyModel, generateIds, startProcessNode, startReferenceWorker, tail,
  type Completion, type ProcessNodeHandle, type ReferenceWorker, type TinyModel,
} from '../processnode/harness.js';
import { withBlock, readBlock, withoutStaleBlocks } from '../processnode/hosts-file.js';
import { dnsRecords, launchPlan, podStatus, rewritePaths } from '../processnode/pod-plan.js';
import { PROCESS_NODE_LABEL, PROCESS_NODE_TAINT } from '../processnode/process-node.js';
import { NVLINK_DOMAIN_LABEL } from '../cluster/gpu-nodes.js';
import { useE2e } from './fixture.js';
import { createBd, getBd, installCrd, kubectl, podsOf, startOperator, waitForBd, type OperatorProcess } from './operator-harness.js';

const PROMPT = [5, 6, 7, 8, 9, 10, 11];
const NEW_TOKENS = 8;
const TEXT_PROMPT = 'hello world bloom';
const CLIQUE = 'proc-nvl';

describe('process node (pure parts)', () => {
  it('translates a rank pod into a bloom-worker process with host paths and its own address', () => {
    const plan = launchPlan({
      metadata: { name: 'p', namespace: 'ns', uid: 'u' },
      spec: {
        hostname: 'tiny-g0-r1',
        containers: [{ name: 'worker', image: 'bloom-worker:dev', env: [
          { name: 'BLOOM_MODEL_DIR', value: '/models/tiny-tp4' }, { name: 'MY_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'DERIVED', value: '$(BLOOM_MODEL_DIR)/x' }, { name: 'MASTER_ADDR', value: '127.0.0.1' }, { name: 'PET_MASTER_ADDR', value: 'localhost' },
        ], volumeMounts: [{ name: 'model', mountPath: '/models' }, { name: 'dshm', mountPath: '/dev/shm' }] }],
        volumes: [{ name: 'model', hostPath: { path: '/var/lib/bloom/models', type: 'Directory' } }, { name: 'dshm', emptyDir: { medium: 'Memory' } }],
      },
    }, { binDir: '/repo/.venv/bin', podIP: '127.90.1.2', hostIP: '127.0.0.1', nodeName: 'n', hostPathRoot: '/root/demo', podDir: '/tmp/p', baseEnv: {} });
    assert.equal(plan.command, '/repo/.venv/bin/bloom-worker');
    assert.deepEqual(plan.args, []);
    assert.equal(plan.env.BLOOM_MODEL_DIR, '/root/demo/var/lib/bloom/models/tiny-tp4');
    assert.equal(plan.env.DERIVED, '/root/demo/var/lib/bloom/models/tiny-tp4/x');
    assert.equal(plan.env.MY_IP, '127.90.1.2');
    assert.equal(plan.env.BLOOM_BIND_ADDRESS, '127.90.1.2');
    assert.deepEqual([plan.env.MASTER_ADDR, plan.env.PET_MASTER_ADDR], ['127.90.1.2', '127.90.1.2'], "the pod's loopback is its own address here");
    assert.equal(plan.env.HOSTNAME, 'tiny-g0-r1');
    assert.equal(rewritePaths('--model=/models/a', plan.mounts), '--model=/root/demo/var/lib/bloom/models/a');
    assert.equal(rewritePaths('/modelsx/a', plan.mounts), '/modelsx/a');
  });

  it('reports a killed process as a Failed pod with exit code 137', () => {
    const t = new Date(0);
    const s = podStatus({ podIP: '127.90.0.2', hostIP: '127.0.0.1', startTime: t, restartPolicy: 'Never',
      container: { name: 'worker', image: 'i', state: 'terminated', exitCode: 137, finishedAt: t, restartCount: 0, ready: false } });
    assert.equal(s.phase, 'Failed');
    assert.equal(s.containerStatuses?.[0]?.state?.terminated?.exitCode, 137);
    assert.equal(s.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
  });

  it('publishes pod names through headless Services and Service names to a ready pod, one hosts block per node', () => {
    const pod = (name: string, ip: string, ready: boolean, group: string) => ({
      name, namespace: 'ns', ip, ready, hostname: name.replace(/-e1$/, ''), subdomain: `tiny-g${group}`,
      labels: { app: 'tiny', group, rank: name.includes('-r0-') ? '0' : '1' },
    });
    const records = dnsRecords([
      { metadata: { namespace: 'ns', name: 'tiny-g0' }, spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector: { app: 'tiny', group: '0' } } },
      { metadata: { namespace: 'ns', name: 'tiny' }, spec: { clusterIP: '10.96.0.9', selector: { app: 'tiny', rank: '0' } } },
      { metadata: { namespace: 'other', name: 'tiny' }, spec: { clusterIP: '10.96.0.10', selector: { app: 'tiny' } } },
    ], [pod('tiny-g0-r0-e1', '127.90.0.2', true, '0'), pod('tiny-g0-r1-e1', '127.90.0.3', false, '0'), pod('tiny-g1-r0-e1', '127.90.0.7', false, '1')], 'cluster.local');
    assert.deepEqual(Object.fromEntries(records), {
      'tiny-g0-r0.tiny-g0.ns.svc.cluster.local': '127.90.0.2',
      'tiny-g0-r1.tiny-g0.ns.svc.cluster.local': '127.90.0.3',
      'tiny-g0.ns.svc.cluster.local': '127.90.0.2',
      'tiny.ns.svc.cluster.local': '127.90.0.2',
    });
    const text = withBlock('127.0.0.1 localhost\n', 'a', records, 1);
    assert.deepEqual(readBlock(withBlock(text, 'b', new Map([['x', '127.1.1.1']]), 2), 'a'), records);
    assert.equal(withBlock(text, 'a', new Map()), '127.0.0.1 localhost\n');
    assert.equal(withoutStaleBlocks(text, () => false), '127.0.0.1 localhost\n');
    assert.equal(withoutStaleBlocks(text, () => true), text);
  });
});

describe('serving through the operator on the process node', function () {
  const ctx = useE2e('serving');
  let operator: OperatorProcess | undefined;
  let node: ProcessNodeHandle | undefined;
  /** A second process node in the same NVLink clique, for the 2-pod group. */
  let peer: ProcessNodeHandle | undefined;
  let reference: ReferenceWorker | undefined;
  let model: TinyModel;
  let want: number[];
  let wantText: Completion;
  const nodeName = `proc-node-${process.pid}`;
  let failed = false;
  afterEach(function () { if (this.currentTest?.state === 'failed') failed = true; });

  before(async function () {
    this.timeout(10 * 60_000);
    model = await ensureTinyModel([1, 4], (l) => console.log(`      ${l}`));
    await installCrd(ctx.cluster);
    // the TP=1 reference on its own loopback address, started before the group so they do not compete for CPU
    reference = await startReferenceWorker(model.shards[1]!, `127.250.${process.pid % 250}.${1 + (Date.now() % 250)}`, join(ctx.cluster.logDir, `reference-${ctx.namespace}.log`));
    want = await generateIds(reference.url, PROMPT, NEW_TOKENS);
    wantText = await complete(reference.url, TEXT_PROMPT, NEW_TOKENS);
    await reference.stop();
    reference = undefined;
    assert.equal(want.length, NEW_TOKENS, `reference output ${JSON.stringify(want)}`);
    node = await startProcessNode(ctx.cluster, { name: nodeName, gpus: 8, labels: { [NVLINK_DOMAIN_LABEL]: CLIQUE } });
    peer = await startProcessNode(ctx.cluster, { name: `${nodeName}-b`, gpus: 8, labels: { [NVLINK_DOMAIN_LABEL]: CLIQUE } });
    operator = await startOperator(ctx.cluster, { extraArgs: ['--namespace', ctx.namespace] });
  });

  after(async function () {
    this.timeout(120_000);
    failed ||= !model || !node || !operator;
    if (failed || process.env.BLOOM_E2E_LOGS) {
      for (const n of [node, peer]) {
        for (const p of (await n?.pods().catch(() => [])) ?? []) console.log(`--- ${p.name} (${p.state})\n${tail(p.log, 1500)}`);
        if (n) console.log(`--- process node ${n.name}\n${tail(n.logFile, 3000)}`);
      }
      if (operator) console.log(`--- operator\n${tail(operator.logFile, 3000)}`);
    }
    await kubectl(ctx.cluster, 'delete', 'bd', '--all', '-n', ctx.namespace, '--wait=false').catch(() => {});
    await reference?.stop();
    await operator?.stop();
    await node?.stop();
    await peer?.stop();
  });

  /** TP=4 as one pod of 4 rank processes (gpusPerPod default), or as `gpusPerPod`-GPU pods packed into the clique. */
  const manifest = (replicas: number, name = 'tiny', gpusPerPod?: number): BloomDeploymentManifest => ({
    metadata: { name },
    spec: {
      replicas,
      tensorParallelSize: 4,
      ...(gpusPerPod === undefined ? {} : { gpusPerPod }),
      model: { source: { hostPath: { path: model.dir } }, path: 'tiny-bloom-int8-tp4' },
      worker: { image: 'bloom-worker:dev', shmSize: '64Mi', terminationGracePeriodSeconds: 5 },
      placement: {
        nodeSelector: { [PROCESS_NODE_LABEL]: 'true' }, tolerations: [{ ...PROCESS_NODE_TAINT, operator: 'Equal' }],
        ...(gpusPerPod === undefined ? {} : { topologyKey: NVLINK_DOMAIN_LABEL }),
      },
      rendezvous: { timeoutSeconds: 120 },
      failurePolicy: { backoffSeconds: 0, startupTimeoutSeconds: 300, maxGroupRestarts: 5 },
    },
  });

  const readyGroups = (n: number) => (bd: { status?: { readyReplicas?: number; groups?: Array<{ phase: string }> } }) =>
    (bd.status?.readyReplicas ?? 0) >= n && (bd.status?.groups ?? []).filter((g) => g.phase === 'Ready').length >= n;

  /** Through the client Service's DNS name (the process node maps it to a ready pod 0). */
  const serviceUrl = (name = 'tiny') => `http://${name}.${ctx.namespace}.svc.cluster.local:8000`;
  /** Pids of the rank processes its launcher started in a pod (the launcher's children). */
  const rankPids = (launcher: number): number[] =>
    readFileSync(`/proc/${launcher}/task/${launcher}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);

  it('serves from one pod of 4 rank processes the same greedy tokens as TP=1 on the same shards', async function () {
    await createBd(ctx, manifest(1));
    const bd = await waitForBd(ctx, 'tiny', 'group 0 Ready', readyGroups(1), 240_000);
    const pods = await podsOf(ctx, 'tiny');
    assert.equal(pods.length, 1, 'TP=4 in one pod');
    assert.match(pods[0]!.status?.podIP ?? '', /^127\./);
    assert.equal(pods[0]!.spec?.containers[0]?.resources?.limits?.['nvidia.com/gpu'], '4');
    assert.deepEqual([bd.status?.groups?.[0]?.leaderAddress, bd.status?.groups?.[0]?.readyRanks], ['127.0.0.1', 4]);
    const launcher = (await node!.pods()).concat(await peer!.pods()).find((p) => p.name === pods[0]!.metadata!.name && p.pid);
    assert.ok(launcher?.pid);
    assert.equal(rankPids(launcher.pid).length, 4, 'the launcher runs one rank process per GPU');
    let got: number[] = [];
    await waitFor('the client Service name to resolve', async () => { got = await generateIds(serviceUrl(), PROMPT, NEW_TOKENS); return true; }, 30_000, 250);
    assert.deepEqual(got, want);
    // the OpenAI-style endpoint with a text prompt (the shards carry the tokenizer): same text, same tokens
    assert.deepEqual(await complete(serviceUrl(), TEXT_PROMPT, NEW_TOKENS), wantText);
    assert.equal(wantText.tokenIds.length, NEW_TOKENS);
  });

  it('recreates the group with a new epoch after a rank is SIGKILLed, and serves the same answer', async function () {
    const before = await waitForBd(ctx, 'tiny', 'Ready', readyGroups(1));
    const epoch = before.status!.groups![0]!.epoch;
    const launcher = (await node!.pods()).concat(await peer!.pods()).find((p) => p.name === `tiny-g0-p0-e${epoch}` && p.pid);
    assert.ok(launcher?.pid, `pod 0 of epoch ${epoch} runs on a process node`);
    const ranks = rankPids(launcher.pid);
    assert.equal(ranks.length, 4);
    process.kill(ranks[2]!, 'SIGKILL'); // one rank process inside the pod: its launcher stops the others and exits
    await waitForBd(ctx, 'tiny', 'a new epoch', (bd) => (bd.status?.groups?.[0]?.epoch ?? 0) > epoch, 60_000);
    const after = await waitForBd(ctx, 'tiny', 'Ready again', (bd) => readyGroups(1)(bd) && bd.status!.groups![0]!.epoch > epoch, 240_000);
    assert.equal(after.status!.groups![0]!.lastFailure?.reason, 'RankFailed');
    const pods = await podsOf(ctx, 'tiny', { [LABELS.group]: '0' });
    assert.ok(pods.every((p) => Number(p.metadata?.labels?.[LABELS.epoch]) === after.status!.groups![0]!.epoch), 'only pods of the new epoch remain');
    let got: number[] = [];
    await waitFor('the new group to answer', async () => { got = await generateIds(serviceUrl(), PROMPT, NEW_TOKENS); return true; }, 30_000, 250);
    assert.deepEqual(got, want);
    assert.deepEqual(await complete(serviceUrl(), TEXT_PROMPT, NEW_TOKENS), wantText);
  });

  it('serves from a 2-pod group (2 pods x 2 ranks on two nodes of one clique) the same answer', async function () {
    await createBd(ctx, manifest(1, 'split', 2));
    const bd = await waitForBd(ctx, 'split', 'group 0 Ready', readyGroups(1), 240_000);
    const pods = await podsOf(ctx, 'split');
    assert.equal(pods.length, 2);
    assert.deepEqual(new Set(pods.map((p) => p.spec?.nodeName)), new Set([nodeName, `${nodeName}-b`]), 'one pod per node');
    assert.equal(bd.status?.groups?.[0]?.leaderAddress, `split-g0-p0.split-g0.${ctx.namespace}.svc.cluster.local`);
    let got: number[] = [];
    await waitFor('the client Service name to resolve', async () => { got = await generateIds(serviceUrl('split'), PROMPT, NEW_TOKENS); return true; }, 30_000, 250);
    assert.deepEqual(got, want);
    assert.deepEqual(await complete(serviceUrl('split'), TEXT_PROMPT, NEW_TOKENS), wantText);
    await kubectl(ctx.cluster, 'delete', 'bd', 'split', '-n', ctx.namespace);
    await waitFor('split pods gone', async () => (await podsOf(ctx, 'split')).length === 0, 90_000);
  });

  it('takes a 2-pod group out of the client Service while one of its non-zero ranks hangs, and back once it recovers (the group-ready gate)', async function () {
    const duo = manifest(2, 'duo', 2);
    duo.spec!.failurePolicy = { ...duo.spec!.failurePolicy, readinessLossSeconds: 600 };
    await createBd(ctx, duo);
    await waitForBd(ctx, 'duo', 'two groups Ready', readyGroups(2), 240_000);
    const podIp = async (group: number, index: number) => (await podsOf(ctx, 'duo', { [LABELS.group]: String(group), [LABELS.pod]: String(index) }))[0]!.status!.podIP!;
    const leaders = [await podIp(0, 0), await podIp(1, 0)];
    // Loopback pod addresses cannot be EndpointSlice endpoints, so the process nodes' DNS plays the endpoints: the client
    // Service name maps to Ready pods 0 (Ready as a kubelet computes it: containers ready and every readiness gate True).
    const service = `duo.${ctx.namespace}.svc.cluster.local`;
    const targets = () => [...new Set([nodeName, `${nodeName}-b`].map((n) => readBlock(readFileSync('/etc/hosts', 'utf8'), n).get(service)).filter((ip): ip is string => ip !== undefined))];
    const leader0 = async () => Object.fromEntries(((await podsOf(ctx, 'duo', { [LABELS.group]: '0', [LABELS.pod]: '0' }))[0]!.status?.conditions ?? []).map((c) => [c.type, c.status]));
    const gate = 'inference.bloom.dev/group-ready';
    await waitFor('group 0 serving behind its open gate', async () => { const c = await leader0(); return c.Ready === 'True' && c[gate] === 'True'; }, 60_000, 250);
    const epoch = (await getBd(ctx, 'duo')).status!.groups![0]!.epoch;
    const pod1 = (await node!.pods()).concat(await peer!.pods()).find((p) => p.name === `duo-g0-p1-e${epoch}` && p.pid);
    assert.ok(pod1?.pid, 'pod 1 of group 0 runs on a process node');
    const hung = rankPids(pod1.pid)[0]!;
    process.kill(hung, 'SIGSTOP'); // a rank of pod 1 hangs; pod 0 of its group stays ready on its own
    try {
      await waitFor('group 0 out of the client Service', async () => JSON.stringify(targets()) === JSON.stringify([leaders[1]]), 60_000, 250);
      const c = await leader0();
      assert.deepEqual([c.ContainersReady, c[gate], c.Ready], ['True', 'False', 'False'], 'pod 0 is fine itself; its group is not');
      let got: number[] = [];
      await waitFor('the client Service to answer from group 1', async () => { got = await generateIds(serviceUrl('duo'), PROMPT, NEW_TOKENS); return true; }, 30_000, 250);
      assert.deepEqual(got, want);
    } finally {
      process.kill(hung, 'SIGCONT');
    }
    await waitFor('group 0 back behind an open gate', async () => { const c = await leader0(); return c.Ready === 'True' && c[gate] === 'True'; }, 90_000, 250);
    const g0 = (await getBd(ctx, 'duo')).status!.groups![0]!;
    assert.deepEqual([g0.epoch, g0.phase], [epoch, 'Ready'], 'the group came back without a restart');
    await kubectl(ctx.cluster, 'delete', 'bd', 'duo', '-n', ctx.namespace);
    await waitFor('duo pods gone', async () => (await podsOf(ctx, 'duo')).length === 0, 90_000);
  });

  it('scales to two groups that both serve the same answer', async function () {
    await kubectl(ctx.cluster, 'scale', 'bd', 'tiny', '--replicas=2', '-n', ctx.namespace);
    const bd = await waitForBd(ctx, 'tiny', 'two groups Ready', readyGroups(2), 240_000);
    assert.deepEqual(bd.status!.groups!.map((g) => g.leaderAddress), ['127.0.0.1', '127.0.0.1']);
    const leaders = [0, 1].map((g) => `tiny-g${g}-p0.tiny-g${g}.${ctx.namespace}.svc.cluster.local`);
    for (const leader of leaders) {
      let got: number[] = [];
      await waitFor(`${leader} to answer`, async () => { got = await generateIds(`http://${leader}:8000`, PROMPT, NEW_TOKENS); return true; }, 30_000, 250);
      assert.deepEqual(got, want, `group of ${leader}`);
      assert.deepEqual(await complete(`http://${leader}:8000`, TEXT_PROMPT, NEW_TOKENS), wantText, `group of ${leader}`);
    }
    const hosts = readFileSync('/etc/hosts', 'utf8');
    assert.ok(hosts.includes(`tiny-g1-p0.tiny-g1.${ctx.namespace}.svc.cluster.local`), 'pod 0 of group 1 has a DNS name');
  });

  it('reports container restarts of a restartPolicy Always pod and finalizes its deletion', async function () {
    const name = 'crashy';
    await ctx.core.createNamespacedPod({ namespace: ctx.namespace, body: {
      metadata: { name },
      spec: {
        nodeName, restartPolicy: 'Always', terminationGracePeriodSeconds: 2,
        containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', 'sleep 0.5; exit 3'] }],
      },
    } });
    let pod = await ctx.core.readNamespacedPod({ name, namespace: ctx.namespace });
    await waitFor('a restart to be reported', async () => {
      pod = await ctx.core.readNamespacedPod({ name, namespace: ctx.namespace });
      return (pod.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1;
    }, 30_000, 250);
    const cs = pod.status!.containerStatuses![0]!;
    assert.equal(cs.lastState?.terminated?.exitCode, 3);
    assert.equal(pod.status?.phase, 'Running');
    assert.match(pod.status?.podIP ?? '', /^127\./);
    await ctx.core.deleteNamespacedPod({ name, namespace: ctx.namespace });
    await waitFor('the process node to finalize the deletion', async () => {
      try { await ctx.core.readNamespacedPod({ name, namespace: ctx.namespace }); return false; } catch { return true; }
    }, 30_000, 250);
    assert.ok(!(await node!.pods()).some((p) => p.name === name), 'no process left for the deleted pod');
  });
});
