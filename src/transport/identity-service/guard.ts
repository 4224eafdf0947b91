import type { HandlerContext } from "@connectrpc/connect";
import type { Logger } from "../../util/logger.js";
import { toConnectError } from "../../wire/errors.js";
import { callerNameKey } from "../caller-auth.js";

/**
 * Runs an RPC's handler with its errors mapped to what the client sees. A synchronous handler's
 * answer stays synchronous (VerifyToken from the cache: no promise hops).
 */
export function guarded<Req, Res>(
  log: Logger,
  rpc: string,
  handler: (req: Req, context: HandlerContext) => Promise<Res> | Res,
) {
  return (req: Req, context: HandlerContext): Promise<Res> | Res => {
    try {
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
