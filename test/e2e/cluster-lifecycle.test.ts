import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { LocalCluster } from '../cluster/local-cluster.js';
import { repoRoot } from '../cluster/paths.js';
import { isAlive, waitFor, type ManagedProcess } from '../cluster/processes.js';
import { sharedCluster } from './fixture.js';

/** Local addresses of the TCP sockets a process listens on, from `ss`. */
function listeningAddresses(pid: number): string[] {
  const out = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(`pid=${pid},`)).map((l) => l.trim().split(/\s+/)[3]!);
}

describe('local control plane lifecycle (cluster:up / cluster:down)', function () {
  const second = new LocalCluster(join(repoRoot(), '.cluster', `side-by-side-${process.pid}`));
  after(() => second.down());

  it('runs a second cluster side by side, on loopback only, idempotently, and stops it without leftovers', async () => {
    const first = await sharedCluster();
    await second.up({ nodes: 2 });
    assert.notEqual(second.server, first.server);
    const server = second.server;
    await second.up({ nodes: 2 });
    assert.equal(second.server, server, 'a second up on a healthy cluster changes nothing');

    const nodes = await second.loadKubeConfig().makeApiClient(CoreV1Api).listNode();
    assert.deepEqual(nodes.items.map((n) => n.metadata?.name).sort(), ['gpu-node-0', 'gpu-node-1']);
    for (const node of nodes.items) assert.equal(node.status?.capacity?.['nvidia.com/gpu'], '8');

    const pids = JSON.parse(readFileSync(join(second.stateDir, 'pids.json'), 'utf8')) as ManagedProcess[];
    assert.deepEqual(pids.map((p) => p.name).sort(), ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok']);
    for (const p of pids) {
      for (const address of listeningAddresses(p.pid)) assert.match(address, /^127\.0\.0\.1:\d+$/, `${p.name} listens on ${address}`);
    }

    await second.down();
    for (const p of pids) assert.equal(isAlive(p.pid), false, `${p.name} (pid ${p.pid}) stopped`);
    assert.equal(existsSync(second.stateDir), false);
    assert.equal(await first.healthy(), true, 'the first cluster is untouched');
  });

  it('marks a node NotReady through the node-not-ready stage', async () => {
    const cluster = await sharedCluster();
    const core = cluster.loadKubeConfig().makeApiClient(CoreV1Api);
    const name = 'gpu-node-7';
    await core.patchNode({ name, body: [{ op: 'add', path: '/metadata/labels/node-not-ready.stage.kwok.x-k8s.io', value: 'true' }] });
    try {
      await waitFor(`${name} NotReady`, async () => {
        const node = await core.readNode({ name });
        return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'False') ?? false;
      }, 60_000);
    } finally {
      await core.patchNode({ name, body: [{ op: 'remove', path: '/metadata/labels/node-not-ready.stage.kwok.x-k8s.io' }] });
    }
    await waitFor(`${name} Ready again`, async () => {
      const node = await core.readNode({ name });
      return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    }, 60_000);
  });
});
