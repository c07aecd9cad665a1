#!/usr/bin/env node
/**
 * The process node as its own process (dev/test only), started like the operator by e2e tests and
 * the demo:
 *
 *   node dist/test/processnode/cli.js --kubeconfig .cluster/demo/kubeconfig --name proc-node-0 --gpus 8 --port 0
 *
 * Serves on 127.0.0.1:--port (0 = any; the port is written to --port-file):
 *   /healthz  200 while the process lives;  /readyz  200 once the node is registered and the watches synced;
 *   /pods     JSON list of the pods it runs (ip, pid, state, ready, restarts, log file).
 * SIGTERM / SIGINT: stops every pod process, removes its /etc/hosts block and its Node, exits 0.
 */
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { repoRoot } from '../cluster/paths.js';
import { ProcessNode } from './process-node.js';

const argv = await yargs(hideBin(process.argv))
  .scriptName('process-node')
  .option('kubeconfig', { type: 'string', demandOption: true })
  .option('name', { type: 'string', default: 'proc-node-0' })
  .option('gpus', { type: 'number', default: 8, describe: 'nvidia.com/gpu capacity' })
  .option('state-dir', { type: 'string', describe: 'pod dirs, logs, pid files (default .cluster/processnode/<name>)' })
  .option('bin-dir', { type: 'string', describe: 'directory of bloom-worker (default <repo>/.venv/bin)' })
  .option('host-path-root', { type: 'string', default: '', describe: 'hostPath volumes resolve under this directory' })
  .option('hosts-file', { type: 'string', default: '/etc/hosts' })
  .option('cluster-domain', { type: 'string', default: 'cluster.local' })
  .option('taint', { type: 'boolean', default: true, describe: 'taint bloom.dev/process-node=true:NoSchedule' })
  .option('ip-prefix', { type: 'string', describe: 'first two octets of pod addresses, e.g. 127.91' })
  .option('port', { type: 'number', default: 0, describe: 'health/debug port on 127.0.0.1 (0 = any)' })
  .option('port-file', { type: 'string', describe: 'write the health port here once listening' })
  .option('threads', { type: 'number', default: 1, describe: 'OMP_NUM_THREADS of every pod process (CPU-only dev machines)' })
  .option('label', { type: 'string', array: true, default: [] as string[], describe: 'extra node label key=value (repeatable), e.g. nvidia.com/gpu.clique=nvl-0' })
  .strict()
  .parseAsync();

const root = repoRoot();
const kc = new KubeConfig();
kc.loadFromFile(argv.kubeconfig);
const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
const node = new ProcessNode({
  kc,
  name: argv.name,
  gpus: argv.gpus,
  stateDir: resolve(argv['state-dir'] ?? join(root, '.cluster', 'processnode', argv.name)),
  binDir: resolve(argv['bin-dir'] ?? join(root, '.venv', 'bin')),
  hostPathRoot: argv['host-path-root'] ? resolve(argv['host-path-root']) : '',
  hostsFile: argv['hosts-file'],
  clusterDomain: argv['cluster-domain'],
  taint: argv.taint,
  labels: Object.fromEntries(argv.label.map((l) => {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new Error(`--label ${l}: expected key=value`);
    return [l.slice(0, eq), l.slice(eq + 1)];
  })),
  ...(argv['ip-prefix'] ? { ipPrefix: argv['ip-prefix'] } : {}),
  // what the worker image's ENV gives (images/worker/Dockerfile), plus a thread cap for shared CPUs
  baseEnv: {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8',
    PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1', OMP_NUM_THREADS: String(argv.threads),
  },
  log,
});

const server = createServer((req, res) => {
  const send = (code: number, body: unknown) => {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.url === '/healthz') return send(200, { ok: true });
  if (req.url === '/readyz') return send(node.ready ? 200 : 503, { ready: node.ready });
  if (req.url === '/pods') return send(200, node.list());
  send(404, { error: 'not found' });
});
await new Promise<void>((r) => server.listen(argv.port, '127.0.0.1', r));
const address = server.address();
const port = typeof address === 'object' && address ? address.port : argv.port;
if (argv['port-file']) writeFileSync(argv['port-file'], String(port));
log(`[${argv.name}] health and debug on http://127.0.0.1:${port} (/healthz /readyz /pods)`);

let stopping = false;
const shutdown = async (sig: string) => {
  if (stopping) return;
  stopping = true;
  log(`[${argv.name}] ${sig}: stopping pod processes`);
  const force = setTimeout(() => process.exit(1), 60_000);
  try {
    await node.stop();
  } finally {
    clearTimeout(force);
    server.close();
    log(`[${argv.name}] stopped`);
    process.exit(0);
  }
};
process.on('SIGTERM', () => { void shutdown('SIGTERM'); });
process.on('SIGINT', () => { void shutdown('SIGINT'); });

try {
  await node.start();
} catch (err) {
  log(`[${argv.name}] failed to start: ${String((err as Error).stack ?? err)}`);
  await node.stop().catch(() => {});
  process.exit(1);
}
