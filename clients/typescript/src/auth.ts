// Sign-in state: where the tokens live, the Authorization header of every
// request, and the refresh of the access token.
//
// The server's refresh tokens are single-use and rotate on every refresh
// (API.md §3): presenting a spent one again revokes the whole session, except
// within a short grace window (10 s by default) meant for a client's
// concurrent tabs. So within one client there is exactly one refresh in
// flight; every request that needs a fresh token waits for it, and a request
// that failed with a token another call has since replaced is retried with
// the new one instead of refreshing again.

import { Emitter } from "./emitter.js";
import { RabtError } from "./errors.js";
import type { components } from "./schema.js";

export type Me = components["schemas"]["Me"];
export type TokenPair = components["schemas"]["TokenPair"];

/** What a signed-in client keeps. */
export interface Tokens {
  accessToken: string;
  /** Null when the refresh token lives in the HttpOnly cookie instead. */
  refreshToken: string | null;
  /** The double-submit token of a cookie refresh (`X-CSRF-Token`). */
  csrfToken?: string | null;
  /** When the access token expires (ms since the epoch, client clock), if known. */
  expiresAt?: number | null;
}

/** Where tokens are kept: memory (the default), localStorage, a keychain… */
export interface TokenStorage {
  get(): Tokens | null | Promise<Tokens | null>;
  set(tokens: Tokens): void | Promise<void>;
  clear(): void | Promise<void>;
}

/** Keeps tokens in memory, for as long as the client lives. */
export function memoryStorage(initial: Tokens | null = null): TokenStorage {
  let tokens = initial;
  return {
    get: () => tokens,
    set: (next) => {
      tokens = next;
    },
    clear: () => {
      tokens = null;
    },
  };
}

export type SignedOutReason = "sign_out" | "refresh_failed";

export type AuthEvents = {
  /** New tokens from a sign-in (not from a refresh). */
  signedIn: { user: Me; tokens: Tokens };
  /** The access token was renewed. */
  refreshed: { tokens: Tokens };
  /** The tokens are gone: signed out, or the session can no longer be refreshed. */
  signedOut: { reason: SignedOutReason; error?: RabtError };
};

/** Requests that never carry the access token (they sign in or refresh). */
const PUBLIC_AUTH_PATHS = new Set([
  "/v1/auth/signup",
  "/v1/auth/verify-email",
  "/v1/auth/verify-email/resend",
  "/v1/auth/login",
  "/v1/auth/token/refresh",
  "/v1/auth/password/forgot",
  "/v1/auth/password/reset",
  "/v1/auth/oauth/exchange",
]);

export const REFRESH_PATH = "/v1/auth/token/refresh";

export interface AuthOptions {
  baseUrl: string;
  fetch: typeof globalThis.fetch;
  storage: TokenStorage;
  /** Refresh this long before the access token expires (default 10 s). */
  refreshMarginMs?: number;
  /** Whether refreshes send cookies (`credentials: "include"`); for cookie refresh in browsers. */
  credentials?: RequestCredentials;
}

export class Auth extends Emitter<AuthEvents> {
  readonly storage: TokenStorage;
  #baseUrl: string;
  #fetch: typeof globalThis.fetch;
  #margin: number;
  #credentials: RequestCredentials | undefined;
  #refreshing: Promise<Tokens | null> | null = null;
  /** Refresh requests sent so far (for diagnostics and tests). */
  refreshCount = 0;

  constructor(options: AuthOptions) {
    super();
    this.storage = options.storage;
    this.#baseUrl = options.baseUrl;
    this.#fetch = options.fetch;
    this.#margin = options.refreshMarginMs ?? 10_000;
    this.#credentials = options.credentials;
  }

  /** The tokens now kept, if any. */
  async tokens(): Promise<Tokens | null> {
    return (await this.storage.get()) ?? null;
  }

  /**
   * An access token fit to send: waits for a refresh in flight, and refreshes
   * first when the kept one expires within the margin. Null when signed out.
   */
  async accessToken(): Promise<string | null> {
    if (this.#refreshing) {
      return (await this.#refreshing)?.accessToken ?? null;
    }
    const tokens = await this.tokens();
    if (!tokens) return null;
    const expiring = tokens.expiresAt != null && Date.now() >= tokens.expiresAt - this.#margin;
    if (expiring && (tokens.refreshToken || tokens.csrfToken)) {
      return (await this.refresh(tokens.accessToken))?.accessToken ?? null;
    }
    return tokens.accessToken;
  }

  /**
   * Renews the access token. At most one refresh runs at a time: callers that
   * come while one is in flight get its outcome. `used` is the access token
   * the caller found wanting; when the kept one is already another, someone
   * refreshed meanwhile and that one is returned without a new refresh.
   * Resolves to null when the session cannot be refreshed (the tokens are
   * then cleared and `signedOut` emitted); rejects when the server could not
   * be reached or failed (the tokens are kept, to try again later).
   */
  refresh(used?: string): Promise<Tokens | null> {
    if (!this.#refreshing) {
      this.#refreshing = this.#refresh(used).finally(() => {
        this.#refreshing = null;
      });
    }
    return this.#refreshing;
  }

  async #refresh(used: string | undefined): Promise<Tokens | null> {
    const current = await this.tokens();
    if (!current) return null;
    if (used !== undefined && current.accessToken !== used) return current;
    if (!current.refreshToken && !current.csrfToken) {
      await this.#signedOut("refresh_failed");
      return null;
    }
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (!current.refreshToken && current.csrfToken) headers["x-csrf-token"] = current.csrfToken;
    this.refreshCount += 1;
    let response: Response;
    try {
      response = await this.#fetch(new URL(REFRESH_PATH, this.#baseUrl), {
        method: "POST",
        headers,
        body: JSON.stringify(current.refreshToken ? { refresh_token: current.refreshToken } : {}),
        ...(this.#credentials ? { credentials: this.#credentials } : {}),
      });
    } catch (err) {
      throw RabtError.network(err);
    }
    if (response.ok) {
      const pair = (await response.json()) as TokenPair;
      const tokens = tokensOf(pair, current);
      await this.storage.set(tokens);
      this.emit("refreshed", { tokens });
      return tokens;
    }
    const error = await RabtError.fromResponse(response);
    if (response.status >= 400 && response.status < 500 && response.status !== 429) {
      // Spent, reused, revoked or unknown: this session is over.
      await this.#signedOut("refresh_failed", error);
      return null;
    }
    throw error;
  }

  /** Keeps the tokens of a sign-in answer and tells listeners. */
  async accept(pair: TokenPair): Promise<Tokens> {
    const tokens = tokensOf(pair, null);
    await this.storage.set(tokens);
    this.emit("signedIn", { user: pair.user, tokens });
    return tokens;
  }

  /** Forgets the tokens (the server's session is the caller's business). */
  async forget(reason: SignedOutReason = "sign_out", error?: RabtError): Promise<void> {
    await this.#signedOut(reason, error);
  }

  async #signedOut(reason: SignedOutReason, error?: RabtError): Promise<void> {
    const had = await this.tokens();
    await this.storage.clear();
    if (had) this.emit("signedOut", error ? { reason, error } : { reason });
  }

  /**
   * A fetch that adds `Authorization: Bearer …` and, on a 401
   * `token_expired`, refreshes once and retries once.
   */
  readonly fetch = async (input: Request): Promise<Response> => {
    const path = new URL(input.url).pathname;
    if (PUBLIC_AUTH_PATHS.has(path)) return this.#fetch(input);
    const retry = input.clone();
    const token = await this.accessToken();
    const first = await this.#send(input, token);
    if (first.status !== 401 || token === null) return first;
    if ((await problemCode(first)) !== "token_expired") return first;
    const fresh = await this.refresh(token);
    if (!fresh) return first;
    return this.#send(retry, fresh.accessToken);
  };

  #send(request: Request, token: string | null): Promise<Response> {
    if (token !== null) request.headers.set("authorization", `Bearer ${token}`);
    return this.#fetch(request);
  }
}

function tokensOf(pair: TokenPair, previous: Tokens | null): Tokens {
  return {
    accessToken: pair.access_token,
    refreshToken: pair.refresh_token ?? null,
    csrfToken: pair.csrf_token ?? previous?.csrfToken ?? null,
    expiresAt: Date.now() + pair.expires_in * 1000,
  };
}

async function problemCode(response: Response): Promise<string | null> {
  try {
    const body = (await response.clone().json()) as { code?: unknown };
    return typeof body.code === "string" ? body.code : null;
  } catch {
    return null;
  }
}
