// Mocha root hooks (loaded with --require): stop the shared control plane once the run ends.
import { stopSharedCluster } from './fixture.js';

export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopSharedCluster();
  },
};
