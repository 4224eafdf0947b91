import { IdentityError } from "../domain/errors.js";
import type { Clock, RateLimiter } from "../domain/ports.js";
import {
  type DecryptedUserData,
  decodeDamagedBase64,
  decryptFailed,
  decryptWithKey,
  rawDataSignature,
  sessionKeyExpired,
  signatureMatches,
} from "../domain/user-data.js";
import type { SessionKeyVault } from "../wechat-session/session-key-vault.js";
import type { VerifyToken } from "./verify-token.js";

export interface DecryptUserDataInput {
  accessToken: string;
  encryptedData: string;
  iv: string;
  rawData: string;
  signature: string;
  /** 0: any age. */
  maxAgeMs: number;
}

/**
 * DecryptUserData: the user comes from the access token (checked as VerifyToken checks it), the
 * session_key from the vault; it never leaves the service. The current key is tried first, then
 * the previous one (data encrypted on the device just before wx.login rotated the key). The data
 * must carry this app's watermark and, when it names a user, this user.
 */
export function createDecryptUserData(deps: {
  verifyToken: VerifyToken;
  sessionKeys: SessionKeyVault;
  clock: Clock;
  /** Calls per user. */
  perUser: RateLimiter;
}) {
  return async function decryptUserData(input: DecryptUserDataInput): Promise<DecryptedUserData> {
    const claims = deps.verifyToken.verify(input.accessToken);
    await deps.perUser.take(`user:${claims.userId}`);
    const encrypted = decodeDamagedBase64("encrypted_data", input.encryptedData);
    const iv = decodeDamagedBase64("iv", input.iv);
    if (iv.length !== 16)
      throw new IdentityError("BAD_IV_LENGTH", `iv: must decode to 16 bytes, got ${iv.length}`, {
        field: "iv",
      });

    const current = await deps.sessionKeys.current(claims.appId, claims.openid);
    if (current === null) throw sessionKeyExpired();
    let sessionKey = current;
    let result = decryptWithKey(current, iv, encrypted);
    if (!result) {
      // Encrypted on the device just before a wx.login() gave the user a new key?
      const previous = await deps.sessionKeys.previous(claims.appId, claims.openid);
      if (previous !== null) {
        sessionKey = previous;
        result = decryptWithKey(previous, iv, encrypted);
      }
    }
    if (!result) throw decryptFailed();

    if (result.watermark.appId !== claims.appId) {
      throw new IdentityError("WATERMARK_MISMATCH", "the data was produced for another mini-program", {
        field: "encrypted_data",
      });
    }
    const { openId, unionId } = result.data as { openId?: unknown; unionId?: unknown };
    if (
      (typeof openId === "string" && openId !== claims.openid) ||
      (typeof unionId === "string" && claims.unionid !== "" && unionId !== claims.unionid)
    ) {
      throw new IdentityError("USER_MISMATCH", "the data belongs to another user", {
        field: "encrypted_data",
      });
    }
    if (input.maxAgeMs > 0 && deps.clock.now() - result.watermark.timestamp * 1000 > input.maxAgeMs) {
      throw new IdentityError("DATA_TOO_OLD", `the data is older than ${input.maxAgeMs / 1000} seconds`, {
        field: "encrypted_data",
      });
    }
    if (input.rawData && !signatureMatches(input.signature, rawDataSignature(input.rawData, sessionKey))) {
      throw new IdentityError("SIGNATURE_MISMATCH", "signature does not match raw_data for this user", {
        field: "signature",
      });
    }
    return result;
  };
}

export type DecryptUserData = ReturnType<typeof createDecryptUserData>;
