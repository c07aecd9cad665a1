#!/usr/bin/env node
// bloom-operator: the BloomDeployment operator's command line.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { bloomDeploymentCrdYaml } from '../api/crd.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import { defaultIdentity, ownNamespace } from '../leader/identity.js';
import { run } from './run.js';

await yargs(hideBin(process.argv))
  .scriptName('bloom-operator')
  .command('run', 'run the controller (in-cluster config unless --kubeconfig)', (y) => y
    .option('kubeconfig', { type: 'string', describe: 'kubeconfig file (default: in-cluster service account)' })
    .option('namespace', { type: 'string', describe: 'watch only this namespace (default: all namespaces)' })
    .option('log-level', { choices: LOG_LEVELS, default: 'info' as LogLevel, describe: 'log level (JSON logs on stderr)' })
    .option('metrics-port', { type: 'number', default: 8080, describe: 'port of /metrics (also serves /healthz and /readyz); 0 picks a free one' })
    .option('health-port', { type: 'number', default: 8081, describe: 'port of /healthz and /readyz' })
    .option('bind-address', { type: 'string', default: '0.0.0.0', describe: 'address the metrics and health servers bind to' })
    .option('leader-elect', { type: 'boolean', default: false, describe: 'elect a leader on a coordination.k8s.io Lease so several replicas can run' })
    .option('leader-election-namespace', { type: 'string', default: ownNamespace(), describe: 'namespace of the Lease (default: POD_NAMESPACE, else the service account\'s)' })
    .option('leader-election-id', { type: 'string', default: 'bloom-operator', describe: 'name of the Lease; one per install (the chart and the Pulumi component pass the release name)' })
    .option('lease-duration', { type: 'number', default: 15, describe: 'seconds a standby waits for an unrenewed lease' })
    .option('identity', { type: 'string', default: defaultIdentity(), describe: 'this replica\'s identity in the Lease (default: POD_NAME or the hostname, plus a random suffix)' })
    .option('cache-sync-timeout', { type: 'number', default: 120, describe: 'seconds a new leader may take to list everything it watches; then it releases the lease and exits 1' })
    .option('request-timeout', { type: 'number', default: 30, describe: 'seconds any API request (not a watch) may take' })
    .option('cluster-domain', { type: 'string', default: 'cluster.local', describe: 'cluster DNS domain used in MASTER_ADDR' })
    .option('workers', { type: 'number', default: 4, describe: 'BloomDeployments reconciled in parallel' })
    .option('watch-nodes', { type: 'boolean', default: true, describe: 'watch nodes to detect lost nodes and cordons (needs cluster read of nodes)' })
    .option('manage-disruption-budgets', { type: 'boolean', default: true, describe: 'give every group a PodDisruptionBudget so evictions go through the operator (drains need the eviction webhook or a node watch to be seen)' })
    .option('webhook-port', { type: 'number', describe: 'serve the eviction webhook (HTTPS) on this port: an eviction asked for a group pod (kubectl drain) replaces its group surge-first' })
    .option('webhook-cert-dir', { type: 'string', describe: 'directory with the webhook\'s tls.crt and tls.key (needed with --webhook-port, and only with it)' })
    .implies('webhook-port', 'webhook-cert-dir')
    .implies('webhook-cert-dir', 'webhook-port'),
  (argv) => run({
    logLevel: argv['log-level'], metricsPort: argv['metrics-port'], healthPort: argv['health-port'], bindAddress: argv['bind-address'],
    leaderElect: argv['leader-elect'], leaderElectionNamespace: argv['leader-election-namespace'], leaderElectionId: argv['leader-election-id'],
    leaseDurationSeconds: argv['lease-duration'], identity: argv.identity, clusterDomain: argv['cluster-domain'], workers: argv.workers,
    watchNodes: argv['watch-nodes'], manageDisruptionBudgets: argv['manage-disruption-budgets'],
    ...(argv['webhook-port'] === undefined ? {} : { webhook: { port: argv['webhook-port'], certDir: argv['webhook-cert-dir']! } }),
    cacheSyncTimeoutSeconds: argv['cache-sync-timeout'], requestTimeoutSeconds: argv['request-timeout'],
    ...(argv.kubeconfig ? { kubeconfig: argv.kubeconfig } : {}), ...(argv.namespace ? { namespace: argv.namespace } : {}),
  }))
  .command('crd', 'print the BloomDeployment CustomResourceDefinition (YAML)', {}, () => { process.stdout.write(bloomDeploymentCrdYaml()); })
  .demandCommand(1)
  .strict()
  .help()
  .parseAsync();
