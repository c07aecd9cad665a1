/**
 * What makes a rank pod pass the `restricted` Pod Security Standard while the worker still runs: the
 * (defaulted) security contexts of spec.worker, a writable scratch emptyDir under a read-only root
 * filesystem, the ephemeral port range as a pod sysctl (which restricted allows), and the API key as a
 * read-only file.
 */
import type { V1PodSecurityContext, V1SecurityContext, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { BloomDeploymentSpec } from '../api/types.js';

export const SCRATCH_VOLUME = 'scratch';
export const SCRATCH_DIR = '/tmp';
/** Where the worker, Python, torch and Triton write: the root filesystem is read-only, /tmp is an emptyDir. */
export const SCRATCH_ENV: Readonly<Record<string, string>> = { TMPDIR: SCRATCH_DIR, HOME: SCRATCH_DIR, TRITON_CACHE_DIR: `${SCRATCH_DIR}/triton` };
export const API_KEY_VOLUME = 'api-key';
export const API_KEY_DIR = '/var/run/secrets/bloom';
/** The API key file in pod 0 (BLOOM_API_KEY_FILE). */
export const API_KEY_FILE = `${API_KEY_DIR}/api-key`;
/** The pod sysctl that confines the ports the kernel hands out (NCCL, gloo, the store's clients) to spec.rendezvous.ephemeralPorts. */
export const EPHEMERAL_PORT_SYSCTL = 'net.ipv4.ip_local_port_range';

export function podSecurityContext(spec: BloomDeploymentSpec): V1PodSecurityContext {
  const { min, max } = spec.rendezvous.ephemeralPorts;
  return { ...structuredClone(spec.worker.podSecurityContext), sysctls: [{ name: EPHEMERAL_PORT_SYSCTL, value: `${min} ${max}` }] };
}

export function containerSecurityContext(spec: BloomDeploymentSpec): V1SecurityContext {
  return structuredClone(spec.worker.securityContext);
}

/** The scratch emptyDir of every pod, and the API key's Secret in pod 0 (the only one serving the API). */
export function securityVolumes(spec: BloomDeploymentSpec, pod: number): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const volumes: V1Volume[] = [{ name: SCRATCH_VOLUME, emptyDir: {} }];
  const mounts: V1VolumeMount[] = [{ name: SCRATCH_VOLUME, mountPath: SCRATCH_DIR }];
  const key = spec.worker.apiKeySecretRef;
  if (key && pod === 0) {
    volumes.push({ name: API_KEY_VOLUME, secret: { secretName: key.name, items: [{ key: key.key, path: 'api-key' }], defaultMode: 0o444 } });
    mounts.push({ name: API_KEY_VOLUME, mountPath: API_KEY_DIR, readOnly: true });
  }
  return { volumes, mounts };
}

/** Env of the scratch directory, and in pod 0 the API key file's path. */
export function securityEnv(spec: BloomDeploymentSpec, pod: number): Record<string, string> {
  return { ...SCRATCH_ENV, ...(spec.worker.apiKeySecretRef && pod === 0 ? { BLOOM_API_KEY_FILE: API_KEY_FILE } : {}) };
}
