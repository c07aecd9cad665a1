// BloomOperator: the operator as one Pulumi ComponentResource, the same
// objects as the Helm chart (charts/bloom-operator) renders: namespace, CRD,
// ServiceAccount, RBAC from the chart's own rule list, Deployment, metrics
// Service. Not imported by the operator itself (only by Pulumi programs).
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { loadCrd, loadRbacRules, type PolicyRule } from './files.js';

export type RbacScope = 'cluster' | 'namespace';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface BloomOperatorArgs {
  /** Namespace of the operator (its pods, Lease, ServiceAccount). Default "bloom-system". */
  namespace?: string;
  /** Create that namespace. Default true. */
  createNamespace?: boolean;
  /** Operator image. Default ghcr.io/bloom-operator/bloom-operator:0.1.0. */
  image?: pulumi.Input<string>;
  imagePullPolicy?: pulumi.Input<string>;
  /** Operator pods (one leads). Default 2. */
  replicas?: number;
  /** Reconcile only this namespace (--namespace). Default: all, or `namespace` with rbacScope "namespace". */
  watchNamespace?: string;
  /** "cluster" (ClusterRole) or "namespace" (Role in the watched namespace; no node access). Default "cluster". */
  rbacScope?: RbacScope;
  /** Default true; must stay true with more than one replica. */
  leaderElection?: boolean;
  logLevel?: LogLevel;
  metricsPort?: number;
  healthPort?: number;
  /** Install the BloomDeployment CRD. Default true. */
  installCrd?: boolean;
  /** Keep the CRD (and every BloomDeployment) when the stack is destroyed. Default true. */
  retainCrdOnDelete?: boolean;
  resources?: pulumi.Input<k8s.types.input.core.v1.ResourceRequirements>;
  nodeSelector?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  tolerations?: pulumi.Input<pulumi.Input<k8s.types.input.core.v1.Toleration>[]>;
  affinity?: pulumi.Input<k8s.types.input.core.v1.Affinity>;
  /** Overrides of the shared files (default: the package's own). */
  crdPath?: string;
  rbacRulesPath?: string;
}

export const DEFAULT_IMAGE = 'ghcr.io/bloom-operator/bloom-operator:0.1.0';
/** distroless "nonroot"; images/operator/Dockerfile runs as this uid. */
export const OPERATOR_UID = 65532;

/** The operator's command line, in the same order as the chart renders it. */
export function operatorArgs(o: {
  leaderElection: boolean;
  /** The Lease's name: one per install (the component's name, as the chart uses the release's). */
  leaderElectionId: string;
  metricsPort: number;
  healthPort: number;
  watchNamespace?: string;
  /** False with namespace-scoped RBAC: the operator may not read nodes then. */
  watchNodes?: boolean;
  logLevel: LogLevel;
}): string[] {
  return [
    'run',
    ...(o.leaderElection ? ['--leader-elect', '--leader-election-id', o.leaderElectionId] : []),
    '--metrics-port',
    String(o.metricsPort),
    '--health-port',
    String(o.healthPort),
    ...(o.watchNamespace ? ['--namespace', o.watchNamespace] : []),
    // Without a node watch (and no eviction webhook here) nothing would see a drain: no budgets to block one.
    ...(o.watchNodes === false ? ['--no-watch-nodes', '--no-manage-disruption-budgets'] : []),
    '--log-level',
    o.logLevel,
  ];
}

export class BloomOperator extends pulumi.ComponentResource {
  public readonly namespace: string;
  /** The namespace the operator reconciles ("" = all). */
  public readonly watchNamespace: string;
  public readonly namespaceResource?: k8s.core.v1.Namespace;
  public readonly crd?: k8s.apiextensions.v1.CustomResourceDefinition;
  public readonly serviceAccount: k8s.core.v1.ServiceAccount;
  /** ClusterRole (cluster scope) or Role (namespace scope) with the watched rules. */
  public readonly role: k8s.rbac.v1.ClusterRole | k8s.rbac.v1.Role;
  public readonly roleBinding: k8s.rbac.v1.ClusterRoleBinding | k8s.rbac.v1.RoleBinding;
  public readonly leaderElectionRole?: k8s.rbac.v1.Role;
  public readonly leaderElectionRoleBinding?: k8s.rbac.v1.RoleBinding;
  public readonly deployment: k8s.apps.v1.Deployment;
  public readonly metricsService: k8s.core.v1.Service;

  constructor(name: string, args: BloomOperatorArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    validate(args); // before registering anything
    super('bloom:index:BloomOperator', name, {}, opts);
    const ns = args.namespace ?? 'bloom-system';
    const scope = args.rbacScope ?? 'cluster';
    const leaderElection = args.leaderElection ?? true;
    const metricsPort = args.metricsPort ?? 8080;
    const healthPort = args.healthPort ?? 8081;
    this.namespace = ns;
    this.watchNamespace = args.watchNamespace ?? (scope === 'namespace' ? ns : '');
    const rules = loadRbacRules(args.rbacRulesPath);
    const labels = {
      'app.kubernetes.io/name': 'bloom-operator',
      'app.kubernetes.io/instance': name,
      'app.kubernetes.io/component': 'operator',
      'app.kubernetes.io/managed-by': 'pulumi',
    };
    const selector = { 'app.kubernetes.io/name': 'bloom-operator', 'app.kubernetes.io/instance': name };
    const child = { parent: this };

    const deps: pulumi.Resource[] = [];
    if (args.createNamespace ?? true) {
      this.namespaceResource = new k8s.core.v1.Namespace(`${name}-namespace`, { metadata: { name: ns, labels } }, child);
      deps.push(this.namespaceResource);
    }
    const inNs = { ...child, dependsOn: [...deps] };

    if (args.installCrd ?? true) {
      const crd = loadCrd(args.crdPath);
      this.crd = new k8s.apiextensions.v1.CustomResourceDefinition(
        `${name}-crd`,
        {
          metadata: { ...crd.metadata, labels: { ...crd.metadata.labels, 'app.kubernetes.io/managed-by': 'pulumi' } },
          spec: crd.spec as unknown as k8s.types.input.apiextensions.v1.CustomResourceDefinitionSpec,
        },
        { ...child, retainOnDelete: args.retainCrdOnDelete ?? true },
      );
    }

    this.serviceAccount = new k8s.core.v1.ServiceAccount(
      `${name}-sa`,
      { metadata: { name, namespace: ns, labels }, automountServiceAccountToken: true },
      inNs,
    );
    const subjects = [{ kind: 'ServiceAccount', name, namespace: ns }];

    if (scope === 'cluster') {
      this.role = new k8s.rbac.v1.ClusterRole(
        `${name}-role`,
        { metadata: { name, labels }, rules: copyRules([...rules.watched, ...rules.clusterScoped]) },
        child,
      );
      this.roleBinding = new k8s.rbac.v1.ClusterRoleBinding(
        `${name}-rolebinding`,
        { metadata: { name, labels }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name }, subjects },
        { ...child, dependsOn: [this.role, this.serviceAccount] },
      );
    } else {
      const watched = this.watchNamespace;
      this.role = new k8s.rbac.v1.Role(
        `${name}-role`,
        { metadata: { name, namespace: watched, labels }, rules: copyRules(rules.watched) },
        inNs,
      );
      this.roleBinding = new k8s.rbac.v1.RoleBinding(
        `${name}-rolebinding`,
        { metadata: { name, namespace: watched, labels }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects },
        { ...child, dependsOn: [this.role, this.serviceAccount] },
      );
    }
    const rbac: pulumi.Resource[] = [this.role, this.roleBinding];
    if (leaderElection) {
      const leName = `${name}-leader-election`;
      this.leaderElectionRole = new k8s.rbac.v1.Role(
        `${name}-leader-election-role`,
        { metadata: { name: leName, namespace: ns, labels }, rules: copyRules(rules.leaderElection) },
        inNs,
      );
      this.leaderElectionRoleBinding = new k8s.rbac.v1.RoleBinding(
        `${name}-leader-election-rolebinding`,
        {
          metadata: { name: leName, namespace: ns, labels },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: leName },
          subjects,
        },
        { ...child, dependsOn: [this.leaderElectionRole, this.serviceAccount] },
      );
      rbac.push(this.leaderElectionRole, this.leaderElectionRoleBinding);
    }

    const replicas = args.replicas ?? 2;
    this.deployment = new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata: { name, namespace: ns, labels },
        spec: {
          replicas,
          selector: { matchLabels: selector },
          template: {
            metadata: { labels },
            spec: {
              serviceAccountName: name,
              automountServiceAccountToken: true,
              terminationGracePeriodSeconds: 30,
              securityContext: {
                runAsNonRoot: true,
                runAsUser: OPERATOR_UID,
                runAsGroup: OPERATOR_UID,
                seccompProfile: { type: 'RuntimeDefault' },
              },
              containers: [
                {
                  name: 'operator',
                  image: args.image ?? DEFAULT_IMAGE,
                  imagePullPolicy: args.imagePullPolicy ?? 'IfNotPresent',
                  args: operatorArgs({
                    leaderElection,
                    leaderElectionId: name,
                    metricsPort,
                    healthPort,
                    watchNamespace: this.watchNamespace,
                    watchNodes: scope === 'cluster',
                    logLevel: args.logLevel ?? 'info',
                  }),
                  env: [
                    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                  ],
                  ports: [
                    { name: 'http-metrics', containerPort: metricsPort, protocol: 'TCP' },
                    { name: 'http-health', containerPort: healthPort, protocol: 'TCP' },
                  ],
                  livenessProbe: {
                    httpGet: { path: '/healthz', port: 'http-health' },
                    initialDelaySeconds: 5,
                    periodSeconds: 10,
                    failureThreshold: 3,
                  },
                  readinessProbe: { httpGet: { path: '/readyz', port: 'http-health' }, periodSeconds: 5, failureThreshold: 3 },
                  securityContext: {
                    runAsNonRoot: true,
                    readOnlyRootFilesystem: true,
                    allowPrivilegeEscalation: false,
                    capabilities: { drop: ['ALL'] },
                    seccompProfile: { type: 'RuntimeDefault' },
                  },
                  resources: args.resources ?? { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '512Mi' } },
                  volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
                },
              ],
              volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }],
              nodeSelector: args.nodeSelector,
              tolerations: args.tolerations,
              affinity: args.affinity,
            },
          },
        },
      },
      { ...child, dependsOn: [...deps, this.serviceAccount, ...rbac, ...(this.crd ? [this.crd] : [])] },
    );

    this.metricsService = new k8s.core.v1.Service(
      `${name}-metrics`,
      {
        metadata: { name: `${name}-metrics`, namespace: ns, labels },
        spec: {
          type: 'ClusterIP',
          selector,
          ports: [{ name: 'http-metrics', port: metricsPort, targetPort: 'http-metrics', protocol: 'TCP' }],
        },
      },
      inNs,
    );

    this.registerOutputs({
      namespace: ns,
      watchNamespace: this.watchNamespace,
      deploymentName: this.deployment.metadata.name,
      serviceAccountName: this.serviceAccount.metadata.name,
    });
  }
}

function validate(args: BloomOperatorArgs): void {
  const scope = args.rbacScope ?? 'cluster';
  if (scope !== 'cluster' && scope !== 'namespace') {
    throw new Error(`BloomOperator: rbacScope must be "cluster" or "namespace", got "${String(scope)}"`);
  }
  const replicas = args.replicas ?? 2;
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`BloomOperator: replicas must be an integer >= 1, got ${replicas}`);
  if (replicas > 1 && !(args.leaderElection ?? true)) {
    throw new Error('BloomOperator: replicas > 1 needs leaderElection: two active operators would fight over the same groups');
  }
  for (const [key, port] of [['metricsPort', args.metricsPort], ['healthPort', args.healthPort]] as const) {
    if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
      throw new Error(`BloomOperator: ${key} must be an integer in 1..65535, got ${port}`);
    }
  }
}

function copyRules(rules: PolicyRule[]): PolicyRule[] {
  return rules.map((r) => ({ ...r, apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] }));
}
