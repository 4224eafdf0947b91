import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  IdentityService,
  LoginRequestSchema,
  RefreshRequestSchema,
  VerifyTokenRequestSchema,
} from "../src/gen/identity/v1/identity_pb.js";
import { callerTable, createCallerAuth } from "../src/transport/caller-auth.js";
import { requestRules } from "../src/transport/identity-service/request-rules.js";
import { BENCH_CALLER_KEY, BENCH_CALLERS } from "./lib/caller.js";

/**
 * What the checks before a method cost, in this process: the caller's key (CALLERS, every call
 * on both ports) and the request against the proto's buf.validate rules (protovalidate, for the
 * messages that declare any; VerifyTokenRequest declares none, so the guard skips it).
 *
 *   npm run bench:checks
 */
const CALLS = Number(process.env.BENCH_CALLS ?? 200_000);

function perCall(check: () => void): string {
  for (let i = 0; i < CALLS / 10; i++) check();
  const start = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) check();
  return `${(Number(process.hrtime.bigint() - start) / CALLS / 1000).toFixed(2)} µs a call`;
}

function rulesPerCall<D extends DescMessage>(schema: D, message: MessageShape<D>): string {
  const check = requestRules(schema);
  return check ? perCall(() => check(message)) : "no rules: skipped";
}

const auth = createCallerAuth(callerTable(JSON.parse(BENCH_CALLERS)));
const authorization = `Bearer ${BENCH_CALLER_KEY}`;

const login = create(LoginRequestSchema, {
  code: "0a1b2c3d4e5f6a7b8c9d",
  attemptId: "5d6c3b1c-4a61-4c8e-9d1f-2f0b1a9c8e7d",
  client: {
    ip: "203.0.113.9",
    userAgent: "Mozilla/5.0 (iPhone) MicroMessenger/8.0",
    deviceId: "device-1234",
  },
});
console.log(`checks before a method, ${CALLS} of each on a valid request:`);
console.log(
  `  caller key           ${perCall(() => auth.authorize(IdentityService.method.verifyToken, authorization))}`,
);
console.log(`  LoginRequest rules   ${rulesPerCall(LoginRequestSchema, login)}`);
console.log(
  `  RefreshRequest rules ${rulesPerCall(RefreshRequestSchema, create(RefreshRequestSchema, { refreshToken: "x".repeat(43) }))}`,
);
console.log(
  `  VerifyTokenRequest   ${rulesPerCall(VerifyTokenRequestSchema, create(VerifyTokenRequestSchema, { accessToken: "x".repeat(300) }))}`,
);
