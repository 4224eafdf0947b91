/**
 * The mini-program side of wechat-identity: silent login, tokens kept in wx storage, and a
 * request() that adds the access token and renews it when it expires.
 *
 * Self-contained on purpose: it needs nothing but the `wx` object, so a mini-program can take
 * this one file as it is. It speaks the reference BFF's API (examples/bff):
 * POST /api/auth/login {code, attemptId}, /api/auth/refresh {refreshToken}, /api/auth/logout, and errors
 * shaped {"error": {"reason": ...}} with 401 for a token to renew and 503 for an outage.
 */

// The only global this uses besides `wx` (every mini-program runtime has it).
declare const setTimeout: (run: () => void, ms: number) => unknown;

/** The part of `wx` this needs; the official `wx` object fits it. */
export interface Wx {
  login(options: {
    timeout?: number;
    success(result: { code: string }): void;
    fail(error: { errMsg: string }): void;
  }): void;
  checkSession(options: { success(): void; fail(error: { errMsg: string }): void }): void;
  request(options: {
    url: string;
    method?: HttpMethod;
    data?: unknown;
    header?: Record<string, string>;
    timeout?: number;
    success(result: WxResponse): void;
    fail(error: { errMsg: string }): void;
  }): unknown;
  getStorageSync(key: string): unknown;
  setStorageSync(key: string, value: unknown): void;
  removeStorageSync(key: string): void;
}

export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS";

export interface WxResponse<T = unknown> {
  statusCode: number;
  data: T;
  header: Record<string, string>;
}

export interface AuthOptions {
  wx: Wx;
  /** The BFF's origin, e.g. "https://api.example.com" (one of the mini-program's request domains). */
  baseUrl: string;
  /** Where the session is kept with wx.setStorageSync. */
  storageKey?: string;
  /** Timeout of each HTTP request. Default 10 s. */
  timeoutMs?: number;
  /**
   * Pauses before sending a login again whose answer was lost (network failure or 5xx), with
   * the same code and attempt id: the service answers with the same session, without asking WeChat again.
   * Default [300, 1000]: up to two retries.
   */
  loginRetryDelaysMs?: readonly number[];
}

/** What the SDK keeps in storage. */
export interface Session {
  accessToken: string;
  refreshToken: string;
  user?: { id: string; openid: string };
}

export interface RequestOptions {
  /** A path on baseUrl ("/api/orders") or an absolute URL. */
  url: string;
  method?: HttpMethod;
  data?: unknown;
  header?: Record<string, string>;
}

/**
 * Why the SDK could not do what was asked.
 * - `unavailable`: the network or the service failed (503, 5xx, 429, no answer). Tokens are kept;
 *   try again later.
 * - `unauthenticated`: no usable session: logout() was called, or WeChat's code was refused.
 * - `refused`: the service said no for good (for example USER_DISABLED, HIGH_RISK_USER).
 */
export class AuthError extends Error {
  override readonly name = "AuthError";
  constructor(
    readonly kind: "unavailable" | "unauthenticated" | "refused",
    /** The service's reason (TOKEN_REVOKED, USER_DISABLED, ...), or NETWORK, LOGGED_OUT, WX_LOGIN_FAILED. */
    readonly reason: string,
    /** The HTTP status, 0 when there was no answer. */
    readonly status = 0,
    message = `${kind}: ${reason}`,
  ) {
    super(message);
  }
}

/** One live session of the user, as the BFF's GET /api/auth/sessions lists it. */
export interface DeviceSession {
  sessionId: string;
  deviceId: string;
  clientIp: string;
  userAgent: string;
  /** Epoch milliseconds. */
  createdAt: number;
  lastRefreshedAt?: number;
  current: boolean;
}

export interface Auth {
  /**
   * Call on launch. Reuses the stored session while WeChat's session is still valid
   * (wx.checkSession), otherwise logs in with wx.login. Concurrent calls share one login.
   */
  silentLogin(): Promise<Session>;
  /**
   * The phone-number login: pass `e.detail.code` of a `<button open-type="getPhoneNumber">`
   * event. Takes a fresh wx.login code and sends both; the user is found by the number WeChat
   * verifies or by the openid (the missing one is linked). Rejects with AuthError "refused",
   * reason ACCOUNT_CONFLICT, when the number is another user's (support merges the two), and
   * INVALID_PHONE_CODE for a spent or foreign code (ask for the number again).
   */
  phoneLogin(phoneCode: string): Promise<Session & { newUser: boolean }>;
  /**
   * wx.request with the access token. On 401 TOKEN_EXPIRED it refreshes once for all requests in
   * flight and replays them; when the session is over (revoked, refresh token reused or expired)
   * it logs in again silently. Resolves with every other answer except 503, which rejects with
   * AuthError "unavailable" (tokens kept).
   */
  request<T = unknown>(options: RequestOptions): Promise<WxResponse<T>>;
  /**
   * Ends the session on the service and forgets the tokens. request() then refuses with
   * LOGGED_OUT until silentLogin() is called again. The tokens are forgotten even when the
   * service cannot be told (it rejects "unavailable"; the session then ends at its idle expiry).
   */
  logout(): Promise<void>;
  /** The user's live sessions (devices), newest first, the current one marked; through request(). */
  sessions(): Promise<DeviceSession[]>;
  /**
   * Ends another session of the user ({sessionId} from sessions()), or with {allOthers: true}
   * every session but this one; resolves with how many ended. Through request().
   */
  endSession(which: { sessionId: string } | { allOthers: true }): Promise<number>;
  /** The session held now, if any. */
  session(): Session | null;
}

export function createAuth(options: AuthOptions): Auth {
  const { wx } = options;
  if (!options.baseUrl) throw new TypeError("createAuth: baseUrl is required");
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const storageKey = options.storageKey ?? "wechat-identity.session";
  const timeout = options.timeoutMs ?? 10_000;
  const retryDelays = options.loginRetryDelaysMs ?? [300, 1000];

  let session = readStoredSession();
  let loggedOut = false;

  /** Reuses the held session if WeChat's is still valid; otherwise a fresh login. */
  const signIn = singleFlight(async () => {
    if (session && (await wechatSessionValid()) && session) return session;
    return (await logIn()).session;
  });

  /** One refresh for every request that found the access token expired. */
  const refresh = singleFlight(async (): Promise<Session> => {
    const current = session;
    if (!current) return signIn();
    const answer = await send({
      url: "/api/auth/refresh",
      method: "POST",
      data: { refreshToken: current.refreshToken },
    });
    if (answer.statusCode === 200 && isTokens(answer.data)) {
      return keep({ ...tokensOf(answer.data), user: current.user });
    }
    // Reused, expired or revoked: this session is over, start a new one.
    if (answer.statusCode === 401 || answer.statusCode === 400) return startOver();
    throw failureOf(answer);
  });

  function readStoredSession(): Session | null {
    try {
      const stored = wx.getStorageSync(storageKey);
      return isTokens(stored) ? stored : null;
    } catch {
      return null;
    }
  }

  function keep(next: Session): Session;
  function keep(next: null): null;
  function keep(next: Session | null): Session | null {
    session = next;
    try {
      if (next) wx.setStorageSync(storageKey, next);
      else wx.removeStorageSync(storageKey);
    } catch {
      // Storage full or unavailable: the session still lives in memory for this launch.
    }
    return next;
  }

  function startOver(): Promise<Session> {
    keep(null);
    return signIn();
  }

  function wechatSessionValid(): Promise<boolean> {
    return new Promise((resolve) =>
      wx.checkSession({ success: () => resolve(true), fail: () => resolve(false) }),
    );
  }

  function wxLogin(): Promise<string> {
    return new Promise((resolve, reject) =>
      wx.login({
        timeout,
        success: ({ code }) => resolve(code),
        fail: ({ errMsg }) => reject(new AuthError("unavailable", "WX_LOGIN_FAILED", 0, errMsg)),
      }),
    );
  }

  /** One per wx.login code: a retry with the same code sends the same one (the code is one-time). */
  const newAttemptId = () =>
    `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}${Math.random().toString(36).slice(2, 10)}`;

  /**
   * A login with a fresh wx.login code, or with a phone code too (the phone login). A lost answer
   * is sent again with the same codes and attempt id; a refused wx.login code is replaced once
   * (the phone code was not spent: WeChat is asked for the number only after the code passed).
   */
  async function logIn(phoneCode?: string): Promise<{ session: Session; newUser: boolean }> {
    const url = phoneCode === undefined ? "/api/auth/login" : "/api/auth/login/phone";
    let code = await wxLogin();
    let attemptId = newAttemptId();
    let freshCodeTaken = false;
    for (let attempt = 0; ; attempt++) {
      let failure: AuthError;
      try {
        const answer = await send({ url, method: "POST", data: { code, attemptId, phoneCode } });
        if (answer.statusCode === 200 && isTokens(answer.data)) {
          loggedOut = false;
          const next = keep({ ...tokensOf(answer.data), user: userOf(answer.data) });
          return { session: next, newUser: (answer.data as { newUser?: unknown }).newUser === true };
        }
        failure = failureOf(answer);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        failure = err;
      }
      const pause = retryDelays[attempt];
      if (failure.kind === "unavailable" && pause !== undefined) {
        await sleep(pause); // same code again: the answer may only have been lost
      } else if ((failure.reason === "INVALID_CODE" || failure.reason === "CODE_USED") && !freshCodeTaken) {
        freshCodeTaken = true; // an expired code, or one spent by an earlier attempt: take a new one
        code = await wxLogin();
        attemptId = newAttemptId();
      } else {
        throw failure;
      }
    }
  }

  function send(request: RequestOptions, accessToken?: string): Promise<WxResponse> {
    const url = /^https?:\/\//.test(request.url)
      ? request.url
      : `${baseUrl}${request.url.startsWith("/") ? "" : "/"}${request.url}`;
    const header: Record<string, string> = { ...request.header };
    if (accessToken) header.Authorization = `Bearer ${accessToken}`;
    return new Promise((resolve, reject) =>
      wx.request({
        url,
        method: request.method ?? "GET",
        data: request.data,
        header,
        timeout,
        success: resolve,
        fail: ({ errMsg }) => reject(new AuthError("unavailable", "NETWORK", 0, errMsg)),
      }),
    );
  }

  const auth: Auth = {
    silentLogin() {
      loggedOut = false;
      return signIn();
    },

    async phoneLogin(phoneCode) {
      const { session: next, newUser } = await logIn(phoneCode);
      return { ...next, newUser };
    },

    async request<T>(request: RequestOptions): Promise<WxResponse<T>> {
      if (loggedOut) throw new AuthError("unauthenticated", "LOGGED_OUT");
      let current = session ?? (await signIn());
      // At most two renewals: an expired token refreshed, then a session found over and restarted.
      for (let renewals = 0; ; renewals++) {
        const answer = await send(request, current.accessToken);
        if (answer.statusCode === 401) {
          const reason = reasonOf(answer.data);
          if (renewals === 2 || loggedOut) throw new AuthError("unauthenticated", reason, 401);
          if (session && session.accessToken !== current.accessToken)
            current = session; // renewed meanwhile
          else current = reason === "TOKEN_EXPIRED" ? await refresh() : await startOver();
          continue;
        }
        if (answer.statusCode === 503) throw failureOf(answer);
        return answer as WxResponse<T>;
      }
    },

    async logout() {
      const current = session;
      loggedOut = true;
      keep(null);
      if (!current) return;
      const answer = await send(
        { url: "/api/auth/logout", method: "POST", data: { refreshToken: current.refreshToken } },
        current.accessToken,
      );
      if (answer.statusCode >= 300) throw failureOf(answer);
    },

    async sessions() {
      const answer = await auth.request<{ sessions: DeviceSession[] }>({
        url: "/api/auth/sessions",
        method: "GET",
      });
      if (answer.statusCode !== 200) throw failureOf(answer);
      return answer.data.sessions;
    },

    async endSession(which) {
      const answer = await auth.request<{ sessionsEnded: number }>({
        url: "/api/auth/sessions/end",
        method: "POST",
        data: which,
      });
      if (answer.statusCode !== 200) throw failureOf(answer);
      return answer.data.sessionsEnded;
    },

    session: () => session,
  };
  return auth;
}

/** Runs `run` once for all callers that arrive while it is pending. */
function singleFlight<T>(run: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | null = null;
  return () => {
    if (!pending) {
      const settled = () => {
        pending = null;
      };
      pending = run();
      pending.then(settled, settled);
    }
    return pending;
  };
}

function failureOf(answer: WxResponse): AuthError {
  const { statusCode: status } = answer;
  const reason = reasonOf(answer.data) || `HTTP_${status}`;
  if (status === 200) return new AuthError("unavailable", "BAD_ANSWER", status);
  if (status >= 500 || status === 429) return new AuthError("unavailable", reason, status);
  if (status === 401) return new AuthError("unauthenticated", reason, status);
  return new AuthError("refused", reason, status);
}

function reasonOf(data: unknown): string {
  const error = isObject(data) ? data.error : undefined;
  return isObject(error) && typeof error.reason === "string" ? error.reason : "";
}

function isTokens(value: unknown): value is { accessToken: string; refreshToken: string } {
  return isObject(value) && typeof value.accessToken === "string" && typeof value.refreshToken === "string";
}

function tokensOf(value: { accessToken: string; refreshToken: string }) {
  return { accessToken: value.accessToken, refreshToken: value.refreshToken };
}

function userOf(data: unknown): Session["user"] {
  const user = isObject(data) ? data.user : undefined;
  return isObject(user) && typeof user.id === "string" && typeof user.openid === "string"
    ? { id: user.id, openid: user.openid }
    : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
