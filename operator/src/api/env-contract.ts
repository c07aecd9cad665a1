/**
 * The env contract between the operator and the worker, read from contract/env.json (the single
 * source; the worker is tested against the same file).
 */
import contract from '../../../contract/env.json' with { type: 'json' };

/** torchrun variables written into every pod: the shape of the group and this pod's place in it. */
export const TORCHRUN_ENV_NAMES: readonly string[] = Object.keys(contract.torchrun);
/** PET_* mirrors of the torchrun variables (torchrun's flag defaults), written into every pod. */
export const TORCHRUN_DEFAULT_ENV_NAMES: readonly string[] = Object.keys(contract.torchrunDefaults);
/** Per-process variables the pod's launcher sets in each rank process; the operator never writes them. */
export const PROCESS_ENV_NAMES: readonly string[] = Object.keys(contract.process);
/** The project's own variables written into every pod. */
export const BLOOM_ENV_NAMES: readonly string[] = Object.keys(contract.bloom);
/** Variables the operator writes into every pod, in contract order. */
export const POD_ENV_NAMES: readonly string[] = [...TORCHRUN_ENV_NAMES, ...TORCHRUN_DEFAULT_ENV_NAMES, ...BLOOM_ENV_NAMES];
/** Names a user may not set: what the operator writes, and what the launcher sets per rank. */
export const RESERVED_ENV_NAMES: readonly string[] = [...POD_ENV_NAMES, ...PROCESS_ENV_NAMES];
/** Prefix reserved for the project's variables. */
export const RESERVED_ENV_PREFIX = 'BLOOM_';
/** BLOOM_* variables a user MAY set (the contract's optional names, e.g. BLOOM_BIND_ADDRESS). */
export const USER_SETTABLE_BLOOM_ENV_NAMES: readonly string[] = Object.keys(contract.optional).filter((name) =>
  name.startsWith(RESERVED_ENV_PREFIX),
);
/** Prefix every key of spec.rendezvous.nccl must carry. */
export const NCCL_ENV_PREFIX = 'NCCL_';

/** True when a user-supplied env var name would override what the operator writes. */
export function isReservedEnvName(name: string): boolean {
  if (RESERVED_ENV_NAMES.includes(name)) return true;
  return name.startsWith(RESERVED_ENV_PREFIX) && !USER_SETTABLE_BLOOM_ENV_NAMES.includes(name);
}
