import { createHash, timingSafeEqual } from "node:crypto";
import { Code, type ConnectError, createContextKey } from "@connectrpc/connect";
import type { CallerConfig } from "../config.js";
import { errorWithInfo } from "../wire/errors.js";

/**
 * Who may call which method: the CALLERS list, each caller a bearer key (or its SHA-256) and the
 * short method names it may call. One implementation for both ports; health, reflection, JWKS
 * and /healthz stay open.
 */
export interface CallerAuth {
  /** The caller's name, or the error to answer with (UNAUTHENTICATED or PERMISSION_DENIED). */
  authorize(method: string, authorization: string | undefined): { caller: string } | { error: ConnectError };
}

/** The caller's name as a value of the handler context, for the logs; "" when callers are not checked. */
export const callerNameKey = createContextKey<string>("", { description: "the authenticated caller" });

const sha256 = (text: string) => createHash("sha256").update(text).digest();

/** The callers' table as structured-cloneable data (the gRPC thread is given it). */
export interface CallerTable {
  callers: Array<{ name: string; keySha256: Uint8Array; methods: string[] }>;
}

export function callerTable(callers: readonly CallerConfig[]): CallerTable {
  return {
    callers: callers.map((c) => ({
      name: c.name,
      keySha256: c.key !== undefined ? sha256(c.key) : Buffer.from(c.keySha256 as string, "hex"),
      methods: c.methods,
    })),
  };
}

export function createCallerAuth(table: CallerTable): CallerAuth {
  const callers = table.callers.map((c) => ({ ...c, keySha256: Buffer.from(c.keySha256) }));
  const unauthenticated = (why: string) => ({
    error: errorWithInfo(`caller not authenticated: ${why}`, Code.Unauthenticated, "CALLER_UNAUTHENTICATED"),
  });
  return {
    authorize(method, authorization) {
      const match = /^Bearer (\S+)$/i.exec(authorization?.trim() ?? "");
      if (!match) return unauthenticated("send authorization: Bearer <caller key>");
      // Compared as SHA-256 digests, each in constant time, against every caller.
      const presented = sha256(match[1] as string);
      let found: (typeof callers)[number] | undefined;
      for (const caller of callers) if (timingSafeEqual(presented, caller.keySha256)) found = caller;
      if (!found) return unauthenticated("unknown key");
      if (!found.methods.includes("*") && !found.methods.includes(method)) {
        return {
          error: errorWithInfo(
            `caller ${found.name} may not call ${method}`,
            Code.PermissionDenied,
            "CALLER_NOT_ALLOWED",
            { method },
          ),
        };
      }
      return { caller: found.name };
    },
  };
}
