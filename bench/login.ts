import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { IdentityService } from "../src/gen/identity/v1/identity_pb.js";
import { startSandboxServer } from "../src/wechat/sandbox.js";
import { formatLoad, runLoad } from "./lib/load.js";
import { backendEnv, describeBackends, startService } from "./lib/service.js";

/**
 * Login end to end over Connect (h2c, binary): BFF-like client -> service (its own process) ->
 * WeChat sandbox at 0 ms -> Postgres + Redis. Codes are minted up front so only logins are timed.
 * Usage: npm run bench:login (DATABASE_URL / REDIS_URL select the real servers).
 */
const LOGINS = Number(process.env.BENCH_LOGINS ?? 10_000);
const IN_FLIGHT = 64;
const APP = { appId: "wxbench000000001", appSecret: "bench-secret" };

async function main() {
  const wechat = await startSandboxServer({ apps: [APP] });
  const service = await startService({
    ...backendEnv(),
    WECHAT_APPS: JSON.stringify([APP]),
    WECHAT_API_BASE_URL: wechat.baseUrl,
  });
  const connect = createClient(
    IdentityService,
    createConnectTransport({
      baseUrl: `http://127.0.0.1:${service.httpPort}`,
      httpVersion: "2",
      useBinaryFormat: true,
    }),
  );
  console.log(
    `Login benchmark: ${describeBackends()}, sandbox at 0 ms, ${IN_FLIGHT} in flight, ${LOGINS} logins per phase`,
  );
  const phase = async (name: string, openidOf: (i: number) => string | undefined) => {
    const codes = Array.from(
      { length: LOGINS },
      (_, i) => wechat.sandbox.issueCode({ appId: APP.appId, openid: openidOf(i) }).code,
    );
    const result = await runLoad(LOGINS, IN_FLIGHT, (i) =>
      connect.login({ appId: APP.appId, code: codes[i] as string }),
    );
    console.log(formatLoad(name, result));
  };
  const run = Date.now().toString(36);
  await phase("first logins (a new user each)", () => undefined);
  await phase("returning users (1,000 users)", (i) => `returning-${run}-${i % 1000}`);
  await service.stop();
  await wechat.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
