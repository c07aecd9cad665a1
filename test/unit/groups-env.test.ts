import assert from 'node:assert/strict';
import contract from '../../contract/env.json' with { type: 'json' };
import { POD_ENV_NAMES, RESERVED_ENV_NAMES } from '../../operator/src/api/env-contract.js';
import { groupPodEnv, modelDir } from '../../operator/src/groups/index.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const envMap = (env: { name: string; value?: string }[]): Record<string, string | undefined> =>
  Object.fromEntries(env.map((e) => [e.name, e.value]));

describe('groups: pod env', () => {
  const podNames = [...Object.keys(contract.torchrun), ...Object.keys(contract.torchrunDefaults), ...Object.keys(contract.bloom)];

  it('writes exactly the pod part of contract/env.json and reserves the per-process names too', () => {
    assert.deepEqual([...POD_ENV_NAMES], podNames);
    assert.deepEqual([...RESERVED_ENV_NAMES].sort(), [...podNames, ...Object.keys(contract.process)].sort());
  });

  for (const [tp, gpusPerPod] of [[8, 8], [8, 4], [8, 2], [4, 4], [1, 1], [16, 8]] as const) {
    const pods = tp / gpusPerPod;
    it(`writes every contract name, once, for every pod of a TP=${tp} group of ${pods} pod(s) x ${gpusPerPod} GPUs`, () => {
      const bd = bloomDeployment(tp, { gpusPerPod, placement: { topologyKey: 'nvidia.com/gpu.clique' } });
      for (let pod = 0; pod < pods; pod++) {
        const env = groupPodEnv({ bd, group: 1, pod, epoch: 4, clusterDomain: CLUSTER_DOMAIN });
        const names = env.map((e) => e.name);
        assert.equal(new Set(names).size, names.length, 'duplicate names');
        assert.deepEqual(names, [...podNames, 'TMPDIR', 'HOME', 'TRITON_CACHE_DIR'], 'contract names in contract order, then the scratch directory');
        const vars = envMap(env);
        assert.deepEqual(
          [vars.WORLD_SIZE, vars.NNODES, vars.NODE_RANK, vars.NPROC_PER_NODE, vars.MASTER_PORT],
          [String(tp), String(pods), String(pod), String(gpusPerPod), '29500'],
        );
        assert.equal(vars.MASTER_ADDR, pods === 1 ? '127.0.0.1' : 'bloom-g1-p0.bloom-g1.serving.svc.cluster.local');
        for (const n of ['NNODES', 'NODE_RANK', 'NPROC_PER_NODE', 'MASTER_ADDR', 'MASTER_PORT']) assert.equal(vars[`PET_${n}`], vars[n]);
        assert.equal(vars.BLOOM_TENSOR_PARALLEL_SIZE, String(tp));
        assert.equal(vars.BLOOM_DEPLOYMENT, 'bloom');
        assert.equal(vars.BLOOM_GROUP, '1');
        assert.equal(vars.BLOOM_EPOCH, '4');
        assert.equal(vars.BLOOM_MODEL_DIR, '/models/bloom-176b');
        assert.equal(vars.BLOOM_HTTP_PORT, '8000');
        assert.equal(vars.BLOOM_HEALTH_PORT, '8001');
        assert.equal(vars.BLOOM_RENDEZVOUS_TIMEOUT, '900');
        assert.equal(vars.BLOOM_TERMINATION_GRACE_SECONDS, '30');
      }
    });
  }

  it('adds the NCCL settings (sorted) and appends the user env last', () => {
    const bd = bloomDeployment(4, {
      gpusPerPod: 2,
      placement: { topologyKey: 'nvidia.com/gpu.clique' },
      rendezvous: { port: 29600, nccl: { NCCL_P2P_LEVEL: 'NVL', NCCL_DEBUG: 'WARN', NCCL_IB_DISABLE: '1' } },
      worker: { image: 'w:1', env: [{ name: 'HF_HOME', value: '/tmp/hf' }, { name: 'NCCL_IB_DISABLE', value: '0' }] },
    });
    const env = groupPodEnv({ bd, group: 0, pod: 1, epoch: 0, clusterDomain: 'example.org' });
    const names = env.map((e) => e.name);
    assert.deepEqual(names.slice(podNames.length), ['TMPDIR', 'HOME', 'TRITON_CACHE_DIR', 'NCCL_DEBUG', 'NCCL_P2P_LEVEL', 'HF_HOME', 'NCCL_IB_DISABLE']);
    const vars = envMap(env);
    assert.equal(vars.NCCL_IB_DISABLE, '0', 'the user entry replaces the NCCL setting of the same name');
    assert.equal(vars.MASTER_PORT, '29600');
    assert.equal(vars.MASTER_ADDR, 'bloom-g0-p0.bloom-g0.serving.svc.example.org');
  });

  it('points pod 0, and only pod 0, at the mounted API key file, never at the key itself', () => {
    const bd = bloomDeployment(16, { placement: { topologyKey: 'nvidia.com/gpu.clique' }, worker: { image: 'w', apiKeySecretRef: { name: 'api', key: 'token' } } });
    const [pod0, pod1] = [0, 1].map((pod) => envMap(groupPodEnv({ bd, group: 0, pod, epoch: 1, clusterDomain: CLUSTER_DOMAIN })));
    assert.equal(pod0!.BLOOM_API_KEY_FILE, '/var/run/secrets/bloom/api-key');
    assert.equal(pod1!.BLOOM_API_KEY_FILE, undefined);
    assert.ok(!Object.values(pod0!).includes('token'));
  });

  it('passes valueFrom through', () => {
    const bd = bloomDeployment(1, { worker: { image: 'w', env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] } });
    const token = groupPodEnv({ bd, group: 0, pod: 0, epoch: 0, clusterDomain: CLUSTER_DOMAIN }).find((e) => e.name === 'TOKEN');
    assert.deepEqual(token, { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } });
  });

  it('joins the model directory', () => {
    assert.equal(modelDir('/models', ''), '/models');
    assert.equal(modelDir('/models/', 'a/b/'), '/models/a/b');
    assert.equal(modelDir('/models', 'x'), '/models/x');
  });
});
