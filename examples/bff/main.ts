import { createServer } from "node:http";
import { createIdentityClient } from "../../src/client/index.js";
import { createBff } from "./server.js";

/** `npm run bff`: the reference BFF on BFF_PORT (3001), in front of IDENTITY_URL (IDENTITY_CALLER_KEY). */
const identity = createIdentityClient({
  baseUrl: process.env.IDENTITY_URL ?? "http://127.0.0.1:8080",
  timeoutMs: Number(process.env.IDENTITY_TIMEOUT_MS ?? 3000),
  // This BFF's key in the service's CALLERS.
  callerKey: process.env.IDENTITY_CALLER_KEY || undefined,
});
const port = Number(process.env.BFF_PORT ?? 3001);
createServer(createBff(identity, { appId: process.env.BFF_APP_ID })).listen(port, () => {
  process.stdout.write(
    `reference BFF on :${port}, identity service at ${process.env.IDENTITY_URL ?? "http://127.0.0.1:8080"}\n`,
  );
});
