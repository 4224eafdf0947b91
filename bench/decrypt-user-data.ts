import { formatLoad, runLoad } from "./lib/load.js";
import { describeBackends, startBenchStack } from "./lib/service.js";

/**
 * DecryptUserData over Connect (h2c, binary) for a 1 KB payload: 100 users log in, each gets
 * encrypted data from the sandbox as a WeChat API on the device would, then 64 workers decrypt.
 * Usage: npm run bench:decrypt (DATABASE_URL / REDIS_URL select the real servers).
 */
const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);
const USERS = 100;
const IN_FLIGHT = 64;

async function main() {
  const stack = await startBenchStack();
  const users = await Promise.all(
    Array.from({ length: USERS }, async (_, i) => {
      const openid = `decrypt-${Date.now().toString(36)}-${i}`;
      const accessToken = (await stack.login(stack.issueCode(openid))).tokens?.accessToken as string;
      // About 1 KB of JSON once the watermark is added, like a run-data or share-info payload.
      const data = { openId: openid, nickName: "用户".repeat(20), stepInfoList: filler(880) };
      return { accessToken, ...stack.encryptUserData(openid, data) };
    }),
  );
  console.log(
    `DecryptUserData benchmark: ${describeBackends()}, ${IN_FLIGHT} in flight, ${USERS} users, ${CALLS} calls, ${Buffer.from(users[0]?.encryptedData ?? "", "base64").length} bytes of ciphertext`,
  );
  await runLoad(2_000, IN_FLIGHT, (i) => stack.decryptUserData(users[i % USERS] as (typeof users)[0])); // warm-up
  const result = await runLoad(CALLS, IN_FLIGHT, (i) =>
    stack.decryptUserData(users[i % USERS] as (typeof users)[0]),
  );
  console.log(formatLoad("DecryptUserData, 1 KB payload", result));
  await stack.stop();
}

function filler(bytes: number) {
  return Array.from({ length: Math.ceil(bytes / 40) }, (_, i) => ({
    timestamp: 1_700_000_000 + i,
    step: 1000 + i,
  }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
