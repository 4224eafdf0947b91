import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REAL_DATABASE_URL } from "../helpers/backends.js";
import { eventually } from "../helpers/eventually.js";
import { connectFailure } from "../helpers/failures.js";
import {
  hasRedisServer,
  type RedisSetup,
  startRedisCluster,
  startRedisSentinelSet,
} from "../helpers/redis-topologies.js";
import { startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

/**
 * Two instances on one Postgres and a Redis that scales out or fails over: a Cluster of three
 * masters with a replica each, or a master and replica watched by three sentinels. A master is
 * killed; once a replica is promoted, logins and revocations work as before.
 */
describe.runIf(hasRedisServer && REAL_DATABASE_URL).each([
  ["Cluster", () => startRedisCluster()],
  ["Sentinel set", () => startRedisSentinelSet()],
] as const)("two instances on a Redis %s", (_name, start) => {
  let redis: RedisSetup;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    redis = await start();
    a = await startTestApp("real", redis.env);
    b = await startTestApp("real", {}, { shareStorageWith: a });
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
    await redis?.stop();
  });

  /** A login on one instance, verified on the other; a logout there, refused on the other. */
  async function loginThenLogoutSeenAcross() {
    const { code } = a.sandbox.issueCode({ appId: APP.appId });
    const { tokens } = await a.connect.login({ appId: APP.appId, code });
    const accessToken = tokens?.accessToken as string;
    expect((await b.grpc.call("verifyToken", { accessToken })).claims?.appId).toBe(APP.appId);
    await a.connect.logout({ refreshToken: tokens?.refreshToken as string });
    await eventually(
      () =>
        b.connect.verifyToken({ accessToken }).then(
          () => false,
          async (err: unknown) => (await connectFailure(Promise.reject(err))).reason === "TOKEN_REVOKED",
        ),
      "the other instance to refuse the logged-out session",
      10_000,
    );
  }

  it("logs in and spreads revocations, before and after a master fails", async () => {
    await loginThenLogoutSeenAcross();
    await redis.failOver();
    // Calls in the seconds of the failover may answer UNAVAILABLE (never an auth error); then
    // both work again.
    await eventually(
      async () => {
        const { code } = a.sandbox.issueCode({ appId: APP.appId });
        return a.connect.login({ appId: APP.appId, code }).then(
          () => true,
          async (err: unknown) => {
            expect((await connectFailure(Promise.reject(err))).code).toBe(Code.Unavailable);
            return false;
          },
        );
      },
      "a login after the failover",
      20_000,
    );
    await loginThenLogoutSeenAcross();
  }, 90_000);
});
