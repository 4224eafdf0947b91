import type { Admin } from "../accounts/admin.js";
import type { LinkIdentity } from "../accounts/link-identity.js";
import type { LoginWithPassword } from "../accounts/login-with-password.js";
import type { CheckSessionKey } from "./check-session-key.js";
import type { DecryptUserData } from "./decrypt-user-data.js";
import type { GetPhoneNumber } from "./get-phone-number.js";
import type { Login } from "./login.js";
import type { Logout } from "./logout.js";
import type { Refresh } from "./refresh.js";
import type { UpdateProfile } from "./update-profile.js";
import type { UserSessions } from "./user-sessions.js";
import type { VerifyToken } from "./verify-token.js";

/** The IdentityService's use cases, one per RPC, as the app context builds them. */
export interface UseCases {
  /** Login and LoginWithPhone (with a phone code). */
  login: Login;
  refresh: Refresh;
  logout: Logout;
  verifyToken: VerifyToken;
  decryptUserData: DecryptUserData;
  getPhoneNumber: GetPhoneNumber;
  checkSessionKey: CheckSessionKey;
  /** ListSessions and EndSession. */
  userSessions: UserSessions;
  updateProfile: UpdateProfile;
  loginWithPassword: LoginWithPassword;
  linkIdentity: LinkIdentity;
  /** AdminService. */
  admin: Admin;
}
