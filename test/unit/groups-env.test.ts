import assert from 'node:assert/strict';
import contract from '../../contract/env.json' with { type: 'json' };
import { RESERVED_ENV_NAMES } from '../../operator/src/api/env-contract.js';
import { modelDir, rankEnv } from '../../operator/src/groups/index.js';
import { bloomDeployment, CLUSTER_DOMAIN } from '../fixtures/bloom-deployments.js';

const envMap = (env: { name: string; value?: string }[]): Record<string, string | undefined> =>
  Object.fromEntries(env.map((e) => [e.name, e.value]));

describe('groups: rank env', () => {
  const contractNames = [...Object.keys(contract.torchrun), ...Object.keys(contract.bloom)];

  it('the reserved names are exactly the torchrun and bloom names of contract/env.json', () => {
    assert.deepEqual([...RESERVED_ENV_NAMES].sort(), [...contractNames].sort());
  });

  for (const tp of [1, 2, 4, 8]) {
    it(`writes every contract name, once, for every rank of a TP=${tp} group`, () => {
      const bd = bloomDeployment(tp);
      const ranks = new Set<string>();
      for (let rank = 0; rank < tp; rank++) {
        const env = rankEnv({ bd, group: 1, rank, epoch: 4, clusterDomain: CLUSTER_DOMAIN });
        const names = env.map((e) => e.name);
        assert.equal(new Set(names).size, names.length, 'duplicate names');
        for (const name of contractNames) assert.ok(names.includes(name), `${name} missing`);
        const vars = envMap(env);
        assert.equal(vars.RANK, String(rank));
        assert.equal(vars.WORLD_SIZE, String(tp));
        assert.equal(vars.BLOOM_TENSOR_PARALLEL_SIZE, String(tp));
        assert.equal(vars.LOCAL_RANK, '0');
        assert.equal(vars.LOCAL_WORLD_SIZE, '1');
        assert.equal(vars.MASTER_ADDR, 'bloom-g1-r0.bloom-g1.serving.svc.cluster.local');
        assert.equal(vars.MASTER_PORT, '29500');
        assert.equal(vars.BLOOM_DEPLOYMENT, 'bloom');
        assert.equal(vars.BLOOM_GROUP, '1');
        assert.equal(vars.BLOOM_EPOCH, '4');
        assert.equal(vars.BLOOM_MODEL_DIR, '/models/bloom-176b');
        assert.equal(vars.BLOOM_HTTP_PORT, '8000');
        assert.equal(vars.BLOOM_HEALTH_PORT, '8001');
        assert.equal(vars.BLOOM_RENDEZVOUS_TIMEOUT, '900');
        ranks.add(vars.RANK!);
      }
      assert.equal(ranks.size, tp);
    });
  }

  it('adds the NCCL settings (sorted) and appends the user env last', () => {
    const bd = bloomDeployment(2, {
      rendezvous: { port: 29600, nccl: { NCCL_P2P_LEVEL: 'NVL', NCCL_DEBUG: 'WARN', NCCL_IB_DISABLE: '1' } },
      worker: { image: 'w:1', env: [{ name: 'HF_HOME', value: '/tmp/hf' }, { name: 'NCCL_IB_DISABLE', value: '0' }] },
    });
    const env = rankEnv({ bd, group: 0, rank: 1, epoch: 0, clusterDomain: 'example.org' });
    const names = env.map((e) => e.name);
    assert.deepEqual(names.slice(contractNames.length), ['NCCL_DEBUG', 'NCCL_P2P_LEVEL', 'HF_HOME', 'NCCL_IB_DISABLE']);
    const vars = envMap(env);
    assert.equal(vars.NCCL_IB_DISABLE, '0', 'the user entry replaces the NCCL setting of the same name');
    assert.equal(vars.MASTER_PORT, '29600');
    assert.equal(vars.MASTER_ADDR, 'bloom-g0-r0.bloom-g0.serving.svc.example.org');
  });

  it('passes valueFrom through', () => {
    const bd = bloomDeployment(1, { worker: { image: 'w', env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] } });
    const token = rankEnv({ bd, group: 0, rank: 0, epoch: 0, clusterDomain: CLUSTER_DOMAIN }).find((e) => e.name === 'TOKEN');
    assert.deepEqual(token, { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } });
  });

  it('joins the model directory', () => {
    assert.equal(modelDir('/models', ''), '/models');
    assert.equal(modelDir('/models/', 'a/b/'), '/models/a/b');
    assert.equal(modelDir('/models', 'x'), '/models/x');
  });
});
