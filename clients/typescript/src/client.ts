// createClient: typed REST access to the rabt API (openapi-fetch over the
// generated `paths`), sign-in helpers, and the realtime socket.

import createFetchClient, { type Client } from "openapi-fetch";

import { Auth, type Me, type TokenPair, type TokenStorage, type Tokens, memoryStorage } from "./auth.js";
import { RabtError } from "./errors.js";
import { RealtimeSocket, type RealtimeOptions, type WebSocketConstructor } from "./realtime.js";
import type { components, paths } from "./schema.js";

export type Schemas = components["schemas"];
export type Api = Client<paths, "application/json">;
export type MfaPending = Schemas["MfaPending"];
export type SignInAnswer = TokenPair | MfaPending;

export interface ClientOptions {
  /** Where tokens are kept; memory by default. */
  storage?: TokenStorage;
  /** The fetch to use (defaults to `globalThis.fetch`). */
  fetch?: typeof globalThis.fetch;
  /**
   * The WebSocket constructor for `realtime()`; defaults to
   * `globalThis.WebSocket` (browsers, Node 22+). On Node 20 pass `ws`'s.
   */
  WebSocket?: WebSocketConstructor;
  /** Refresh this long before the access token expires (default 10 s). */
  refreshMarginMs?: number;
  /** Headers sent with every REST request. */
  headers?: Record<string, string>;
  /** For browser sign-in with the refresh token in an HttpOnly cookie. */
  credentials?: RequestCredentials;
}

/** The result of an openapi-fetch call. */
type Result<T> = { data?: T; error?: unknown; response: Response };

export interface RabtClient {
  /**
   * Typed REST access: `api.GET("/v1/projects/{id}", { params: { path: { id } } })`
   * answers `{ data, error, response }`; wrap it in `unwrap()` to get the data or
   * a thrown `RabtError`. Requests carry the access token and refresh it when
   * it expired.
   */
  api: Api;
  auth: Auth;
  /** The data of a call, or its failure as a `RabtError`. */
  unwrap<T>(call: Promise<Result<T>>): Promise<T>;
  /** Creates an account; a verification email follows (202 whatever the address). */
  signUp(body: Schemas["SignupRequest"]): Promise<Schemas["Accepted"]>;
  /** Verifies the email with the emailed token, which also signs in. */
  verifyEmail(token: string): Promise<SignInAnswer>;
  /** Signs in; with two-factor sign-in on, answers `{mfa_required, mfa_token}`. */
  signIn(body: Schemas["LoginRequest"]): Promise<SignInAnswer>;
  /** Completes a sign-in that needs a second factor. */
  completeMfa(body: Schemas["ChallengeRequest"]): Promise<SignInAnswer>;
  /** Ends the session on the server (or every session: `all`) and forgets the tokens. */
  signOut(scope?: "session" | "all"): Promise<void>;
  /** The caller's account. */
  me(): Promise<Me>;
  /** Opens the realtime socket. */
  realtime(options?: RealtimeOptions): RealtimeSocket;
}

export function createClient(baseUrl: string, options: ClientOptions = {}): RabtClient {
  const base = baseUrl.replace(/\/+$/, "");
  const rawFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const auth = new Auth({
    baseUrl: base,
    fetch: rawFetch,
    storage: options.storage ?? memoryStorage(),
    ...(options.refreshMarginMs !== undefined ? { refreshMarginMs: options.refreshMarginMs } : {}),
    ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
  });
  const api = createFetchClient<paths>({
    baseUrl: base,
    fetch: auth.fetch,
    ...(options.headers ? { headers: options.headers } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
  });

  async function unwrap<T>(call: Promise<Result<T>>): Promise<T> {
    let result: Result<T>;
    try {
      result = await call;
    } catch (err) {
      if (err instanceof RabtError) throw err;
      throw RabtError.network(err);
    }
    if (result.error !== undefined || !result.response.ok) {
      throw await RabtError.fromResponse(result.response, result.error);
    }
    return result.data as T;
  }

  async function signedIn(answer: SignInAnswer): Promise<SignInAnswer> {
    if ("access_token" in answer) await auth.accept(answer);
    return answer;
  }

  return {
    api,
    auth,
    unwrap,
    signUp: (body) => unwrap(api.POST("/v1/auth/signup", { body })),
    verifyEmail: async (token) => signedIn(await unwrap(api.POST("/v1/auth/verify-email", { body: { token } }))),
    signIn: async (body) => signedIn(await unwrap(api.POST("/v1/auth/login", { body }))),
    completeMfa: async (body) => signedIn(await unwrap(api.POST("/v1/auth/mfa/challenge", { body }))),
    signOut: async (scope = "session") => {
      try {
        if (await auth.tokens()) await unwrap(api.POST("/v1/auth/logout", { body: { scope } }));
      } finally {
        await auth.forget("sign_out");
      }
    },
    me: () => unwrap(api.GET("/v1/me")),
    realtime: (realtimeOptions = {}) => {
      const WebSocket =
        realtimeOptions.WebSocket ??
        options.WebSocket ??
        (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (!WebSocket) {
        throw new Error("no WebSocket: pass the `WebSocket` option (e.g. the `ws` package's on Node 20)");
      }
      return new RealtimeSocket(base, auth, { ...realtimeOptions, WebSocket });
    },
  };
}

export type { Tokens, TokenStorage };
