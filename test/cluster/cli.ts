#!/usr/bin/env node
// `npm run cluster:up` / `npm run cluster:down`: the local control plane at .cluster/.
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { LocalCluster } from './local-cluster.js';
import { repoRoot } from './paths.js';

const cluster = () => new LocalCluster(join(repoRoot(), '.cluster'));
const log = (line: string) => console.log(`[cluster] ${line}`);

await yargs(hideBin(process.argv))
  .scriptName('cluster')
  .command('up', 'start etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with fake GPU nodes',
    (y) => y.option('nodes', { type: 'number', default: Number(process.env.BLOOM_CLUSTER_NODES ?? 4), describe: 'fake GPU nodes (8 GPUs each)' }),
    async (argv) => {
      const c = cluster();
      await c.up({ nodes: argv.nodes, log });
      log(`try: .cluster/bin/kubectl --kubeconfig ${c.kubeconfig} get nodes`);
    })
  .command('down', 'stop every process of the local control plane and remove its state', {}, async () => {
    await cluster().down();
    log('stopped');
  })
  .command('status', 'exit 0 when the local control plane is healthy', {}, async () => {
    const ok = await cluster().healthy();
    log(ok ? 'healthy' : 'not running');
    process.exitCode = ok ? 0 : 1;
  })
  .demandCommand(1)
  .strict()
  .parseAsync();
