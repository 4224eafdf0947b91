import type { AppRegistry } from "../domain/app-registry.js";
import { IdentityError, invalidArgument } from "../domain/errors.js";
import type {
  AccountStore,
  AuditRecord,
  Clock,
  IdentityLink,
  LinkOutcome,
  RateLimiter,
} from "../domain/ports.js";
import type { ClientInfo } from "../identity/end-user.js";
import type { VerifyToken } from "../identity/verify-token.js";
import type { CodeExchange } from "../wechat-session/code-exchange.js";
import type { PhoneNumbers } from "../wechat-session/phone-numbers.js";
import { newPasswordCredential, type PasswordHasher } from "./password-hasher.js";

/** What proves the identity a user links: it is theirs because they just showed it. */
export type LinkProof =
  /** A fresh wx.login code of another mini-program (or of the same one's other account). */
  | { kind: "wechat"; appId: string; code: string }
  /** A getPhoneNumber button code of the app the access token is for. */
  | { kind: "phone"; phoneCode: string }
  /** A username and password the user chooses: a way in through LoginWithPassword. */
  | { kind: "password"; username: string; password: string };

const REFUSED: Partial<Record<LinkOutcome, () => IdentityError>> = {
  conflict: () =>
    new IdentityError(
      "ACCOUNT_CONFLICT",
      "this identity belongs to another user (or this user already has one of its kind): an administrator can merge the two",
    ),
  taken: () => new IdentityError("USERNAME_TAKEN", "another account has this username"),
  "no-user": () => new IdentityError("USER_NOT_FOUND", "the access token's user no longer exists"),
};

/**
 * LinkIdentity: the user of a valid access token adds a way in, proven by WeChat (a code of
 * another app, a phone code) or chosen (a password). Tries are limited per user: each one asks
 * WeChat (billed, for phone numbers) or hashes a password.
 */
export function createLinkIdentity(deps: {
  verifyToken: Pick<VerifyToken, "verify">;
  apps: AppRegistry;
  codeExchange: CodeExchange;
  phoneNumbers: PhoneNumbers;
  accounts: Pick<AccountStore, "linkIdentity">;
  hasher: PasswordHasher;
  passwordMinLength: number;
  clock: Clock;
  perUser: RateLimiter;
}) {
  async function identityOf(
    proof: LinkProof,
    claims: { appId: string; openid?: string },
  ): Promise<IdentityLink> {
    switch (proof.kind) {
      case "wechat": {
        const app = deps.apps.resolve(proof.appId);
        // No attempt id: a link is not retried with the same code.
        const { session } = await deps.codeExchange.exchange(app, proof.code, "");
        return {
          kind: "wechat",
          identity: { appId: app.appId, openid: session.openid, unionid: session.unionid },
        };
      }
      case "phone": {
        if (!claims.openid)
          throw invalidArgument(
            "phone_code",
            "a phone code is WeChat's: it needs the access token of a WeChat login",
          );
        const phone = await deps.phoneNumbers.verify(
          deps.apps.resolve(claims.appId),
          proof.phoneCode,
          claims.openid,
        );
        return { kind: "phone", phoneNumber: phone.phoneNumber };
      }
      case "password":
        return { kind: "password", ...(await newPasswordCredential(deps, proof.username, proof.password)) };
    }
  }

  return async function linkIdentity(input: {
    accessToken: string;
    proof: LinkProof;
    client: ClientInfo;
  }): Promise<{ linked: boolean }> {
    const claims = deps.verifyToken.verify(input.accessToken);
    await deps.perUser.take(`user:${claims.userId}`);
    const link = await identityOf(input.proof, claims);
    const audit: AuditRecord = {
      at: new Date(deps.clock.now()),
      type: "identity.linked",
      actor: claims.userId,
      subjectUserId: claims.userId,
      ip: input.client.ip,
      userAgent: input.client.userAgent,
      details:
        link.kind === "wechat"
          ? { kind: "wechat", app_id: link.identity.appId }
          : link.kind === "password"
            ? { kind: "password", username: link.username }
            : { kind: "phone" },
    };
    const outcome = await deps.accounts.linkIdentity(claims.userId, link, audit);
    const refused = REFUSED[outcome];
    if (refused) throw refused();
    return { linked: outcome === "linked" };
  };
}

export type LinkIdentity = ReturnType<typeof createLinkIdentity>;
