import type { DescMethod, Message } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import type { Logger } from "../../util/logger.js";
import { toConnectError } from "../../wire/errors.js";
import { callerNameKey } from "../caller-auth.js";
import { requestRules } from "./request-rules.js";

/**
 * Runs an RPC's handler on a request that keeps the proto's rules, with its errors mapped to what
 * the client sees. A synchronous handler's answer stays synchronous (VerifyToken from the cache:
 * no promise hops).
 */
export function guarded<Req extends Message, Res>(
  log: Logger,
  method: DescMethod,
  handler: (req: Req, context: HandlerContext) => Promise<Res> | Res,
) {
  const rpc = method.name;
  const checkRules = requestRules<Req>(method.input);
  return (req: Req, context: HandlerContext): Promise<Res> | Res => {
    try {
      checkRules?.(req);
      const result = handler(req, context);
      return result instanceof Promise
        ? result.catch((err: unknown) => {
            throw toConnectError(err, log, rpc, context.values.get(callerNameKey));
          })
        : result;
    } catch (err) {
      throw toConnectError(err, log, rpc, context.values.get(callerNameKey));
    }
  };
}
