/**
 * GitOps health, from the tools' own code: Argo CD's verdict (the README's Lua health check on
 * gopher-lua, evaluated as Argo CD does) and Flux's (kstatus from sigs.k8s.io/cli-utils), both
 * computed by test/gitops' Go helper on BloomDeployments exactly as the API server returns them.
 */
import assert from 'node:assert/strict';
import { Watch } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, PLURAL } from '../../operator/src/api/constants.js';
import { withDefaults } from '../../operator/src/api/defaults.js';
import type { BloomDeployment, BloomDeploymentManifest, Condition, GroupStatus } from '../../operator/src/api/types.js';
import { computeStatus } from '../../operator/src/lifecycle/status.js';
import { gitopsHealth, readmeHealthLua, verdict, type GitopsHealth } from '../gitops/gitops.js';
import { useE2e, type E2eContext } from './fixture.js';
import { createBd, getBd, installCrd, kubectl, podsOf, startOperator, testDeployment, waitForBd, type OperatorProcess } from './operator-harness.js';

const condition = (bd: BloomDeployment, type: string): Condition | undefined => bd.status?.conditions?.find((c) => c.type === type);
const isTrue = (bd: BloomDeployment, type: string) => condition(bd, type)?.status === 'True';
const observed = (bd: BloomDeployment) => bd.status?.observedGeneration === bd.metadata.generation;

describe('GitOps health checks (the README\'s Argo CD Lua on gopher-lua, kstatus from cli-utils)', function () {
  describe('the helper and the README script, on objects made here', () => {
    const NOW = Date.parse('2026-01-10T08:00:00Z');
    const manifest = (spec: Record<string, unknown> = {}): BloomDeployment => withDefaults({
      apiVersion: `${API_GROUP}/${API_VERSION}`, kind: 'BloomDeployment',
      metadata: { name: 'bloom', namespace: 'ml', generation: 3 },
      spec: { replicas: 2, tensorParallelSize: 8, model: { source: { hostPath: { path: '/m' } } }, worker: { image: 'w:1' }, ...spec } as BloomDeploymentManifest['spec'],
    });
    const group = (index: number, phase: GroupStatus['phase'], revision = 'new', extra: Partial<GroupStatus> = {}): GroupStatus =>
      ({ index, phase, epoch: 1, revision, readyPods: phase === 'Ready' ? 1 : 0, readyRanks: phase === 'Ready' ? 8 : 0, restarts: 0, ...extra });
    /** The status the operator computes for these groups, after `before` (a previous status) and `seconds` later. */
    const withStatus = (groups: GroupStatus[], { seconds = 0, previous }: { seconds?: number; previous?: BloomDeployment } = {}): BloomDeployment => {
      const bd = previous ?? manifest();
      const status = computeStatus({ bd, groups, upToDate: new Set(groups.filter((g) => g.revision === 'new').map((g) => g.index)), revision: 'new', now: NOW + seconds * 1000, clientService: true });
      return { ...bd, status };
    };

    it('reads the one lua block of the README\'s GitOps section, unindented', () => {
      const lua = readmeHealthLua();
      assert.match(lua, /^-- argocd-cm: resource\.customizations\.health\.inference\.bloom\.dev_BloomDeployment\n/);
      assert.match(lua, /\nreturn hs\n$/);
      assert.throws(() => readmeHealthLua('# x\n### GitOps and Pulumi\nno script\n## Next\n```lua\nreturn {}\n```\n'), /expected one lua block/);
    });

    it('evaluates as Argo CD does: an invalid status is Unknown, no string library, a non-table is an error', async () => {
      const bd = manifest();
      assert.deepEqual((await gitopsHealth(bd, 'return {status = "Fine", message = "m"}')).argo, { status: 'Unknown', message: 'Lua returned an invalid health status' });
      await assert.rejects(gitopsHealth(bd, 'return {status = string.upper("healthy")}'), /attempt to index a non-table object\(nil\) with key 'upper'/);
      await assert.rejects(gitopsHealth(bd, 'return "Healthy"'), /expect table output from Lua script, not string/);
      assert.deepEqual((await gitopsHealth(bd, 'return {status = "Healthy", message = obj.metadata.name .. " at " .. obj.metadata.generation}')).argo, { status: 'Healthy', message: 'bloom at 3' });
    });

    it('an object without any status is Current to kstatus (why the status defaults to observedGeneration 0); with the default it is InProgress', async () => {
      const bare = await gitopsHealth(manifest());
      assert.deepEqual(bare.kstatus, { status: 'Current', message: 'Resource is current' });
      assert.equal(bare.argo.status, 'Progressing');
      const defaulted = await gitopsHealth({ ...manifest(), status: { observedGeneration: 0 } });
      assert.deepEqual(defaulted.kstatus, { status: 'InProgress', message: 'BloomDeployment generation is 3, but latest observed generation is 0' });
      assert.deepEqual(defaulted.argo, { status: 'Progressing', message: 'waiting for the operator to observe the latest spec' });
    });

    const cases: Array<[state: string, bd: () => BloomDeployment, argo: string, kstatus: string, message: RegExp]> = [
      ['groups starting', () => withStatus([group(0, 'Pending'), group(1, 'Starting')]), 'Progressing', 'InProgress', /^groups 0, 1 starting/],
      ['complete', () => withStatus([group(0, 'Ready'), group(1, 'Ready')]), 'Healthy', 'Current', /^2 group\(s\) ready at revision new$/],
      ['rolling out', () => withStatus([group(0, 'Ready', 'old'), group(1, 'Ready', 'old'), group(2, 'Starting')]), 'Progressing', 'InProgress', /^rolling out revision new/],
      ['past the progress deadline', () => withStatus([group(0, 'Ready', 'old'), group(1, 'Ready', 'old'), group(2, 'Starting')], {
        seconds: 600, previous: withStatus([group(0, 'Ready', 'old'), group(1, 'Ready', 'old'), group(2, 'Starting')]),
      }), 'Degraded', 'Failed', /^no progress for 600s/],
      ['a group restarting', () => withStatus([group(0, 'Ready'), group(1, 'Restarting', 'new', { lastFailure: { reason: 'RankFailed', message: 'rank 3 exited', time: new Date(NOW).toISOString() } })]), 'Degraded', 'InProgress', /^group 1 restarting: RankFailed: rank 3 exited$/],
      ['every group failed', () => withStatus([group(0, 'Failed', 'new', { message: 'gave up' }), group(1, 'Failed', 'new', { message: 'gave up' })]), 'Degraded', 'Failed', /^all 2 group\(s\) failed/],
    ];
    for (const [state, bd, argo, kstatus, message] of cases) {
      it(`${state}: ${argo} / ${kstatus}`, async () => {
        const h = await gitopsHealth(bd());
        assert.equal(verdict(h), `${argo}/${kstatus}`);
        assert.match(h.argo.message, message);
      });
    }
  });

  describe('on live BloomDeployments driven through their states by the real operator (kwok)', function () {
    const ctx = useE2e('gitops');
    let operator: OperatorProcess | undefined;
    const summary: Array<[state: string, verdict: string]> = [];
    const observe = async (state: string, bd: BloomDeployment): Promise<GitopsHealth> => {
      const h = await gitopsHealth(bd);
      summary.push([state, verdict(h)]);
      console.log(`      [gitops] ${state}: Argo ${h.argo.status} (${h.argo.message}); kstatus ${h.kstatus.status} (${h.kstatus.message})`);
      return h;
    };
    // TP=2 in one pod of 2 GPUs: small, and kwok makes its pod Ready at once.
    const small = (name: string, spec: Record<string, unknown> = {}) => testDeployment(name, { tensorParallelSize: 2, ...spec });
    const setImage = (name: string, image: string) => kubectl(ctx.cluster, '-n', ctx.namespace, 'patch', 'bd', name, '--type', 'merge', '-p', JSON.stringify({ spec: { worker: { image } } }));
    const failPod = async (name: string) => {
      const pods = (await podsOf(ctx, name)).filter((p) => !p.metadata?.deletionTimestamp);
      assert.equal(pods.length, 1, `one live pod of ${name}`);
      await kubectl(ctx.cluster, '-n', ctx.namespace, 'label', 'pod', pods[0]!.metadata!.name!, 'pod-container-running-failed.stage.kwok.x-k8s.io=true');
    };
    const complete = (b: BloomDeployment) => observed(b) && isTrue(b, 'Ready');
    let applied: { created: BloomDeployment; read: BloomDeployment };

    before(async function () {
      this.timeout(120_000);
      await installCrd(ctx.cluster);
      // Applied while no operator runs: what a GitOps tool reads back right after its apply.
      const created = await createBd(ctx, small('web'));
      applied = { created, read: await getBd(ctx, 'web') };
      await Promise.all([
        createBd(ctx, small('stuck', { rollout: { progressDeadlineSeconds: 5 } })),
        // A restart waits out a 5-minute back-off: the group stays Restarting for the whole test.
        createBd(ctx, small('crashy', { failurePolicy: { backoffSeconds: 300, maxBackoffSeconds: 300 } })),
        // No restart allowed: the first failure fails the group, and so the deployment.
        createBd(ctx, small('doomed', { failurePolicy: { maxGroupRestarts: 0 } })),
      ]);
      operator = await startOperator(ctx.cluster, { extraArgs: ['--namespace', ctx.namespace], name: 'operator-gitops' });
    });
    after(async () => {
      await operator?.stop();
      if (summary.length) console.log(`      [gitops] ${summary.map(([s, v]) => `${s}: ${v}`).join('; ')}`);
    });

    it('just applied: Progressing / InProgress (the API server reads the status as observedGeneration 0)', async () => {
      for (const bd of [applied.created, applied.read]) {
        assert.deepEqual(bd.status, { observedGeneration: 0 }, 'the schema default, not a status of the operator');
        const h = await observe('just applied', bd);
        assert.equal(verdict(h), 'Progressing/InProgress');
        assert.equal(h.argo.message, 'waiting for the operator to observe the latest spec');
        assert.equal(h.kstatus.message, 'BloomDeployment generation is 1, but latest observed generation is 0');
      }
    });

    it('Available (complete): Healthy / Current, with the Ready condition\'s message', async () => {
      const bd = await waitForBd(ctx, 'web', 'complete', complete);
      const h = await observe('Available', bd);
      assert.equal(verdict(h), 'Healthy/Current');
      assert.equal(h.argo.message, condition(bd, 'Ready')!.message);
      assert.match(h.argo.message, /^1 group\(s\) ready at revision [0-9a-f]{10}$/);
      assert.equal(condition(bd, 'Reconciling'), undefined);
      assert.equal(condition(bd, 'Stalled'), undefined);
    });

    it('rolling out: Progressing / InProgress in every version the API server went through, until complete: Healthy / Current', async () => {
      await waitForBd(ctx, 'web', 'complete', complete);
      const versions = await recordVersions(ctx, 'web');
      try {
        await setImage('web', 'ghcr.io/bloom-operator/worker:test-2');
        await waitForBd(ctx, 'web', 'rolled out', (b) => b.metadata.generation === 2 && complete(b));
        await waitFor(() => versions.list.some((b) => b.metadata.generation === 2 && complete(b)));
      } finally {
        versions.stop();
      }
      const verdicts: string[] = [];
      let rollingOut: GitopsHealth | undefined;
      for (const bd of versions.list) {
        const h = await gitopsHealth(bd);
        const done = bd.metadata.generation === 2 && complete(bd);
        verdicts.push(`gen ${bd.metadata.generation}/${bd.status?.observedGeneration} ${condition(bd, 'Progressing')?.reason}: ${verdict(h)}`);
        if (bd.metadata.generation === 1) continue; // the version before the patch
        assert.equal(verdict(h), done ? 'Healthy/Current' : 'Progressing/InProgress', verdicts.join('\n'));
        if (observed(bd) && condition(bd, 'Progressing')?.reason === 'RollingOut' && !rollingOut) {
          rollingOut = await observe('rolling out', bd);
          assert.equal(rollingOut.argo.message, condition(bd, 'Reconciling')!.message);
          assert.match(rollingOut.argo.message, /^rolling out revision [0-9a-f]{10}, 1 group\(s\) at older revisions left/);
        }
      }
      assert.ok(rollingOut, `a rolling-out version was observed:\n${verdicts.join('\n')}`);
      assert.ok(versions.list.some((b) => b.metadata.generation === 2 && !observed(b)), 'the version right after the patch (not yet observed) was seen too');
    });

    it('rolling out to an image that never gets ready, past the progress deadline (5 s): Degraded / Failed, and one Warning', async () => {
      await waitForBd(ctx, 'stuck', 'complete', complete);
      await setImage('stuck', 'bloom.test/never-ready');
      const before = await waitForBd(ctx, 'stuck', 'the rollout observed', (b) => b.metadata.generation === 2 && observed(b) && isTrue(b, 'Reconciling'), 30_000);
      assert.equal(verdict(await gitopsHealth(before)), 'Progressing/InProgress', 'before the deadline');
      const bd = await waitForBd(ctx, 'stuck', 'Stalled', (b) => observed(b) && isTrue(b, 'Stalled'), 30_000);
      const h = await observe('past the progress deadline', bd);
      assert.equal(verdict(h), 'Degraded/Failed');
      const stalled = condition(bd, 'Stalled')!;
      assert.equal(stalled.reason, 'ProgressDeadlineExceeded');
      assert.equal(h.argo.message, stalled.message);
      assert.equal(h.kstatus.message, stalled.message);
      assert.match(stalled.message, /^no progress for 5s \(spec\.rollout\.progressDeadlineSeconds\) since .*: rolling out revision/);
      assert.deepEqual([condition(bd, 'Progressing')?.status, condition(bd, 'Progressing')?.reason], ['False', 'ProgressDeadlineExceeded']);
      assert.equal(condition(bd, 'Reconciling'), undefined);
      assert.equal(condition(bd, 'Available')?.status, 'True', 'the old group keeps serving');
      // Reported at the deadline (the reconcile scheduled for it), not at some later resync.
      const late = (Date.parse(stalled.lastTransitionTime) - Date.parse(bd.status!.lastProgressTime!)) / 1000;
      assert.ok(late >= 5 && late < 8, `reported ${late}s after the last progress`);
      await new Promise((r) => setTimeout(r, 3000));
      const events = (await ctx.core.listNamespacedEvent({ namespace: ctx.namespace, fieldSelector: 'involvedObject.name=stuck' })).items
        .filter((e) => e.reason === 'ProgressDeadlineExceeded');
      assert.deepEqual(events.map((e) => [e.type, e.count ?? 1, e.message]), [['Warning', 1, stalled.message]], 'one Warning, once');
    });

    it('a restarting group: Degraded / InProgress', async () => {
      await waitForBd(ctx, 'crashy', 'complete', complete);
      await failPod('crashy');
      const bd = await waitForBd(ctx, 'crashy', 'group restarting', (b) => observed(b) && b.status?.groups?.[0]?.phase === 'Restarting' && isTrue(b, 'Degraded'), 60_000);
      const h = await observe('a restarting group', bd);
      assert.equal(verdict(h), 'Degraded/InProgress');
      assert.equal(h.argo.message, condition(bd, 'Degraded')!.message);
      assert.match(h.argo.message, /^group 0 restarting: RankFailed/);
      assert.equal(condition(bd, 'Reconciling')?.reason, 'GroupsRestarting');
      assert.match(h.kstatus.message, /^group 0 restarting; 0\/1 group\(s\) ready/);
    });

    it('a Failed deployment: Degraded / Failed', async () => {
      await waitForBd(ctx, 'doomed', 'complete', complete);
      await failPod('doomed');
      const bd = await waitForBd(ctx, 'doomed', 'Failed', (b) => observed(b) && b.status?.phase === 'Failed', 60_000);
      const h = await observe('a Failed deployment', bd);
      assert.equal(verdict(h), 'Degraded/Failed');
      assert.equal(condition(bd, 'Stalled')?.reason, 'AllGroupsFailed');
      assert.deepEqual([condition(bd, 'Progressing')?.status, condition(bd, 'Progressing')?.reason], ['False', 'AllGroupsFailed']);
      assert.equal(h.argo.message, condition(bd, 'Stalled')!.message);
      assert.match(h.argo.message, /^all 1 group\(s\) failed, none is starting: group 0 failed: /);
    });

    it('in the issue\'s order: Argo Progressing/Healthy/Progressing/Degraded/Degraded/Degraded, kstatus InProgress/Current/InProgress/Failed/InProgress/Failed', () => {
      const states = ['just applied', 'Available', 'rolling out', 'past the progress deadline', 'a restarting group', 'a Failed deployment'];
      const first = states.map((s) => summary.find(([state]) => state === s)?.[1] ?? 'not observed');
      assert.deepEqual(first, ['Progressing/InProgress', 'Healthy/Current', 'Progressing/InProgress', 'Degraded/Failed', 'Degraded/InProgress', 'Degraded/Failed']);
    });
  });
});

async function waitFor(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every version of one BloomDeployment from a watch (the current one first), until stop(). */
async function recordVersions(ctx: E2eContext, name: string): Promise<{ list: BloomDeployment[]; stop: () => void }> {
  const list: BloomDeployment[] = [];
  const request = await new Watch(ctx.kc).watch(`/apis/${API_GROUP}/${API_VERSION}/namespaces/${ctx.namespace}/${PLURAL}`, { fieldSelector: `metadata.name=${name}` },
    (type: string, obj: BloomDeployment) => { if (type === 'ADDED' || type === 'MODIFIED') list.push(obj); },
    () => {});
  await waitFor(() => list.length > 0);
  return { list, stop: () => request.abort() };
}
