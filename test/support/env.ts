/** Where the test suite finds its real dependencies (CI and developer machines run both locally). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const TEST_JWT_SECRET = "test-secret-0123456789abcdef";
/** LOG_LEVEL for gateways under test; silent unless asked. */
export const TEST_LOG_LEVEL = process.env.TEST_LOG_LEVEL ?? "silent";
