import { IdentityError } from "../domain/errors.js";
import type { ProfileChange, UserRecord, UserStore } from "../domain/ports.js";
import type { VerifyToken } from "./verify-token.js";

/** What a user who never set a profile is shown as (PROFILE_DEFAULT_NICKNAME, PROFILE_DEFAULT_AVATAR_URL). */
export interface ProfileDefaults {
  nickname: string;
  avatarUrl: string;
}

/**
 * The user as the answers show them: a profile never set reads as the configured default, so a
 * new user has a name and an avatar from the start, and a changed default reaches them too.
 */
export function withProfileDefaults<U extends UserRecord>(user: U, defaults: ProfileDefaults): U {
  return {
    ...user,
    nickname: user.nickname ?? defaults.nickname,
    avatarUrl: user.avatarUrl ?? defaults.avatarUrl,
  };
}

/** UpdateProfile: the access token's user sets their nickname and/or avatar (checked by the proto's rules). */
export function createUpdateProfile(deps: {
  verifyToken: Pick<VerifyToken, "verify">;
  users: Pick<UserStore, "updateProfile">;
  defaults: ProfileDefaults;
}) {
  return async function updateProfile(input: { accessToken: string } & ProfileChange) {
    const claims = deps.verifyToken.verify(input.accessToken);
    const user = await deps.users.updateProfile(claims.userId, {
      nickname: input.nickname,
      avatarUrl: input.avatarUrl,
    });
    // A valid token of a user that is gone (deleted by hand): nothing left to change.
    if (!user) throw new IdentityError("TOKEN_REVOKED", "the user of this access token no longer exists");
    const shown = withProfileDefaults(
      { ...user, appId: claims.appId, openid: claims.openid, unionid: claims.unionid || user.unionid },
      deps.defaults,
    );
    // What the token's roles grant, as the token says (a change of roles refreshes the token).
    return { user: shown, permissions: claims.permissions };
  };
}

export type UpdateProfile = ReturnType<typeof createUpdateProfile>;
