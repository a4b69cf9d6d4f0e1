// Failures of the rabt API as one error class.
//
// Every failing response of the server is `application/problem+json` (RFC
// 9457) with a stable snake_case `code`, field errors for 422s and the
// request id that is in every server log line of that request.

import type { components } from "./schema.js";

export type Problem = components["schemas"]["Problem"];
export type FieldError = components["schemas"]["FieldError"];

/** A failing answer of the rabt API (or no answer at all: `status` 0). */
export class RabtError extends Error {
  override readonly name = "RabtError";
  /** The HTTP status; 0 when the server could not be reached. */
  readonly status: number;
  /** The stable error code (`validation_failed`, `token_expired`, …). */
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  /** The fields that were invalid (422 `validation_failed`). */
  readonly errors: FieldError[];
  /** The request id to quote when asking about this failure. */
  readonly request_id: string | null;
  /** Seconds to wait before trying again, from `Retry-After` (429). */
  readonly retryAfter: number | null;
  /** The problem body as the server sent it, when it sent one. */
  readonly problem: Problem | null;

  constructor(init: {
    status: number;
    code: string;
    title?: string;
    detail?: string;
    errors?: FieldError[];
    request_id?: string | null;
    retryAfter?: number | null;
    problem?: Problem | null;
    cause?: unknown;
  }) {
    super(init.detail || init.title || init.code, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.title = init.title ?? init.code;
    this.detail = init.detail ?? "";
    this.errors = init.errors ?? [];
    this.request_id = init.request_id ?? null;
    this.retryAfter = init.retryAfter ?? null;
    this.problem = init.problem ?? null;
  }

  /** The error of one field, if the server named it. */
  fieldError(field: string): FieldError | undefined {
    return this.errors.find((e) => e.field === field);
  }

  /**
   * The error a failing response stands for. A problem body gives the code;
   * anything else (a proxy's HTML page, an empty body) gets `http_<status>`.
   * `body` is the already parsed body, when the caller has read it.
   */
  static async fromResponse(response: Response, body?: unknown): Promise<RabtError> {
    let parsed = body;
    if (parsed === undefined) {
      try {
        const text = await response.clone().text();
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
    }
    const requestId = response.headers.get("x-request-id");
    const retryAfterHeader = response.headers.get("retry-after");
    const retryAfter = retryAfterHeader !== null && /^\d+$/.test(retryAfterHeader) ? Number(retryAfterHeader) : null;
    if (isProblem(parsed)) {
      return new RabtError({
        status: parsed.status || response.status,
        code: parsed.code,
        title: parsed.title,
        detail: parsed.detail,
        errors: Array.isArray(parsed.errors) ? parsed.errors : [],
        request_id: parsed.request_id ?? requestId,
        retryAfter,
        problem: parsed,
      });
    }
    return new RabtError({
      status: response.status,
      code: `http_${response.status}`,
      title: response.statusText || `HTTP ${response.status}`,
      request_id: requestId,
      retryAfter,
    });
  }

  /** The error for a request that got no answer (network down, DNS, CORS). */
  static network(cause: unknown): RabtError {
    return new RabtError({
      status: 0,
      code: "network_error",
      title: "The server could not be reached",
      detail: cause instanceof Error ? cause.message : String(cause),
      cause,
    });
  }
}

/** Whether a parsed body looks like the server's problem+json. */
export function isProblem(body: unknown): body is Problem {
  return (
    typeof body === "object" &&
    body !== null &&
    typeof (body as { code?: unknown }).code === "string" &&
    typeof (body as { status?: unknown }).status === "number"
  );
}
