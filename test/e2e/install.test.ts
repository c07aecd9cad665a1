import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { tokenKubeconfig, writeKubeconfig } from '../cluster/kubeconfig.js';
import { repoRoot, toolPath } from '../cluster/paths.js';
import { waitFor } from '../cluster/processes.js';
import { useE2e, type E2eContext } from './fixture.js';
import { createBd, customObjects, kubectl, podsOf, startOperator, multiPodSpec, testDeployment, waitForBd } from './operator-harness.js';
import { API_GROUP, API_VERSION, PLURAL } from '../../operator/src/api/constants.js';

const run = promisify(execFile);
const RELEASE = 'bloom';
const RELEASE_NS = 'bloom-system';
const ROLE = `${RELEASE}-bloom-operator`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function helm(ctx: E2eContext, ...args: string[]): Promise<string> {
  const { stdout } = await run(toolPath('helm'), ['--kubeconfig', ctx.cluster.kubeconfig, ...args]);
  return stdout;
}

/** The full user flow: create a deployment, wait for it, scale it, delete it and see everything go. */
async function deployScaleDelete(ctx: E2eContext, namespace: string, name: string, timeoutMs: number): Promise<void> {
  const scoped = { ...ctx, namespace };
  // a 2-pod group (TP=2 as 2 pods x 1 GPU in one clique): gated, so lifting the gate needs pods/patch
  await createBd(scoped, testDeployment(name, { replicas: 1, ...multiPodSpec(2, 1) }));
  await waitForBd(scoped, name, 'ready', (b) => b.status?.readyReplicas === 1, timeoutMs);
  await kubectl(ctx.cluster, '-n', namespace, 'scale', `bd/${name}`, '--replicas=2');
  await waitForBd(scoped, name, 'scaled', (b) => b.status?.readyReplicas === 2, timeoutMs);
  await customObjects(ctx.kc).deleteNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace, plural: PLURAL, name });
  await waitFor('everything deleted', async () => (await podsOf(scoped, name)).length === 0, timeoutMs);
}

describe('Helm install: the chart\'s RBAC is sufficient and necessary', function () {
  const ctx = useE2e('helm');
  let kubeconfig: string;

  before(async () => {
    await helm(ctx, 'install', RELEASE, join(repoRoot(), 'charts', 'bloom-operator'), '-n', RELEASE_NS, '--create-namespace', '--set', 'replicaCount=1');
    await waitFor('ServiceAccount token', async () => {
      const token = await ctx.core.createNamespacedServiceAccountToken({ name: ROLE, namespace: RELEASE_NS, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
      kubeconfig = writeKubeconfig(join(ctx.cluster.stateDir, 'chart-sa.kubeconfig'),
        tokenKubeconfig(ctx.cluster.server, join(ctx.cluster.pkiDir, 'ca.crt'), ROLE, token.status!.token));
      return true;
    }, 30_000);
  });
  after(async () => { await helm(ctx, 'uninstall', RELEASE, '-n', RELEASE_NS).catch(() => {}); });

  it('installs the CRD, RBAC and Deployment with helm', async () => {
    const status = JSON.parse(await helm(ctx, 'status', RELEASE, '-n', RELEASE_NS, '-o', 'json'));
    assert.equal(status.info.status, 'deployed');
    await kubectl(ctx.cluster, 'get', 'crd', `${PLURAL}.${API_GROUP}`);
    const deployment = JSON.parse(await kubectl(ctx.cluster, '-n', RELEASE_NS, 'get', 'deployment', ROLE, '-o', 'json'));
    assert.equal(deployment.spec.template.spec.serviceAccountName, ROLE);
    assert.equal(deployment.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem, true);
  });

  it('runs a whole deployment lifecycle as the chart\'s ServiceAccount (token, not admin)', async () => {
    const operator = await startOperator(ctx.cluster, { kubeconfig, name: 'chart-sa-operator', extraArgs: ['--leader-elect', '--leader-election-namespace', RELEASE_NS] });
    try {
      await deployScaleDelete(ctx, ctx.namespace, 'sa-flow', 120_000);
      assert.doesNotMatch(readFileSync(operator.logFile, 'utf8'), /forbidden/i, 'no request was denied');
    } finally {
      await operator.stop();
    }
  });

  const removals: Array<[string, string, string]> = [
    ['pods', 'patch', 'pods stay gated: the operator may not lift the scheduling gate'],
    ['bloomdeployments/status', 'update', 'no status can be reported'],
    ['services', 'create', 'no group Service: the rendezvous DNS name cannot exist'],
    ['bloomdeployments/finalizers', 'update', 'no owned object can set blockOwnerDeletion under OwnerReferencesPermissionEnforcement'],
    ['networkpolicies', 'create', 'no group NetworkPolicy: the group\'s pods are never created without it'],
  ];
  for (const [i, [resource, verb, why]] of removals.entries()) {
    it(`fails the same flow without "${verb}" on ${resource} (${why})`, async () => {
      const rbac = ctx.kc.makeApiClient(RbacAuthorizationV1Api);
      const role = await rbac.readClusterRole({ name: ROLE });
      const original = structuredClone(role.rules);
      role.rules = role.rules!
        .map((r) => (r.resources?.includes(resource) ? { ...r, verbs: r.verbs.filter((v) => v !== verb) } : r))
        .filter((r) => r.verbs.length > 0);
      await rbac.replaceClusterRole({ name: ROLE, body: role });
      const namespace = `${ctx.namespace}-no-${i}`;
      await ctx.core.createNamespace({ body: { metadata: { name: namespace } } });
      await waitFor('default ServiceAccount', async () => { await ctx.core.readNamespacedServiceAccount({ name: 'default', namespace }); return true; }, 30_000);
      const operator = await startOperator(ctx.cluster, { kubeconfig, name: `chart-sa-no-${i}`, extraArgs: ['--leader-elect', '--leader-election-namespace', RELEASE_NS, '--namespace', namespace] });
      try {
        await assert.rejects(deployScaleDelete(ctx, namespace, 'denied', 15_000), /timed out/);
        await sleep(500);
        assert.match(readFileSync(operator.logFile, 'utf8'), /forbidden/i, 'the operator was denied');
      } finally {
        await operator.stop();
        const fresh = await rbac.readClusterRole({ name: ROLE });
        fresh.rules = original!;
        await rbac.replaceClusterRole({ name: ROLE, body: fresh });
        await ctx.core.deleteNamespace({ name: namespace }).catch(() => {});
      }
    });
  }
});

