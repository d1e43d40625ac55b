/** Root hooks: cleanups after every test, and a leak check that fails the run when one is found. */
import { leaked, runCleanups } from "./cleanup.js";
import { dropTestDatabases } from "./db.js";
import { stopLogicalPostgres } from "./logical-postgres.js";
import { stopSharedRedisCluster } from "./redis-cluster.js";

export const mochaHooks = {
  async afterEach(this: Mocha.Context) {
    const errors = await runCleanups();
    const left = leaked();
    const title = this.currentTest?.fullTitle() ?? "a test";
    if (left.length > 0) throw new Error(`${title} leaked: ${left.join(", ")}`);
    if (errors.length > 0) throw new Error(`cleanup after ${title} failed: ${errors.join("; ")}`);
  },
  async afterAll() {
    await dropTestDatabases();
    await stopSharedRedisCluster();
    await stopLogicalPostgres();
  },
};
