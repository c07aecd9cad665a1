// A typed BloomDeployment custom resource for Pulumi programs. The spec type
// is the API's own (operator/src/api/types.ts), so a field renamed there
// fails the Pulumi program's type check instead of being silently dropped.
import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import { API_GROUP_VERSION, KIND } from '../api/constants.js';
import type { BloomDeploymentSpec, BloomDeploymentStatus, DeepPartial, ModelSource, ModelSpec, WorkerSpec } from '../api/types.js';

/** Every level may be a Pulumi Input (a value, a promise or another resource's output). */
export type DeepInput<T> = pulumi.Input<
  T extends readonly (infer U)[] ? DeepInput<U>[] : T extends object ? { [K in keyof T]: DeepInput<T[K]> } : T
>;

/**
 * What a user writes: every field defaults at admission except those the
 * CRD requires (spec.model.source, spec.worker.image).
 */
export type BloomDeploymentSpecArgs = DeepPartial<Omit<BloomDeploymentSpec, 'model' | 'worker'>> & {
  model: DeepPartial<Omit<ModelSpec, 'source'>> & { source: ModelSource };
  worker: DeepPartial<Omit<WorkerSpec, 'image'>> & { image: string };
};

export interface BloomDeploymentArgs {
  metadata?: pulumi.Input<k8s.types.input.meta.v1.ObjectMeta>;
  spec: DeepInput<BloomDeploymentSpecArgs>;
}

export class BloomDeployment extends k8s.apiextensions.CustomResource {
  /** The spec as stored (after the API server's defaulting). */
  declare readonly spec: pulumi.Output<BloomDeploymentSpec>;
  declare readonly status: pulumi.Output<BloomDeploymentStatus | undefined>;

  constructor(name: string, args: BloomDeploymentArgs, opts?: pulumi.CustomResourceOptions) {
    super(name, { apiVersion: API_GROUP_VERSION, kind: KIND, metadata: args.metadata, spec: args.spec }, opts);
  }
}
