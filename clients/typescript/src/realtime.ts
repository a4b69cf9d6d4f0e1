// The realtime socket (API.md §6, GET /v1/realtime): typed events, the last
// `seq` kept, and reconnection that loses nothing.
//
// The access token goes in the subprotocol list, `bearer, <token>`, and the
// server answers with `bearer`. Every server → client event carries `seq`,
// increasing per user; after a drop the socket reconnects with exponential
// backoff plus jitter and `?since=<last seq>`, and the server replays what
// was missed before live events. When the server no longer keeps that far
// back it sends `error` `resync_required` (close code 4009): the socket
// reconnects without `since` and emits `resync_required` once the new
// connection is open, so that a REST reload made then misses nothing.

import type { Auth } from "./auth.js";
import { Emitter } from "./emitter.js";
import type { components } from "./schema.js";

export type Message = components["schemas"]["Message"];
export type Notification = components["schemas"]["Notification"];
export type FieldError = components["schemas"]["FieldError"];

type Seq = { seq: number };

export type MessageEvent = Seq & {
  type: "message.created" | "message.updated" | "message.deleted";
  conversation_id: string;
  message: Message;
};
export type ConversationReadEvent = Seq & {
  type: "conversation.read";
  conversation_id: string;
  user_id: string;
  message_id: string;
};
export type NotificationEvent = Seq & { type: "notification.created"; notification: Notification };
export type TypingEvent = Seq & { type: "typing"; conversation_id: string; user_id: string };
export type PongEvent = Seq & { type: "pong" };
export type ErrorEvent = Seq & {
  type: "error";
  code: string;
  detail: string;
  /** Set when the error answers a `message.send`. */
  client_message_id?: string;
  errors?: FieldError[];
};

/** Every frame the server sends. */
export type ServerEvent =
  | MessageEvent
  | ConversationReadEvent
  | NotificationEvent
  | TypingEvent
  | PongEvent
  | ErrorEvent;

/** Every frame a client may send. */
export type ClientFrame =
  | {
      type: "message.send";
      conversation_id: string;
      body: string;
      client_message_id?: string;
      attachment_file_ids?: string[];
    }
  | { type: "typing"; conversation_id: string }
  | { type: "ping" };

type EventsByType = { [E in ServerEvent as E["type"]]: Extract<ServerEvent, { type: E["type"] }> };

export type RealtimeEvents = EventsByType & {
  /** Every server event, whatever its type. */
  event: ServerEvent;
  /** A connection is open (`reconnect` after a drop; `since` as sent). */
  open: { reconnect: boolean; since: number | null };
  /** The connection closed; `willReconnect` unless closed for good. */
  close: { code: number; reason: string; willReconnect: boolean; delayMs: number | null };
  /**
   * Events were missed beyond what the server keeps: reload by REST (the
   * socket is already open again, so nothing after this moment is lost).
   */
  resync_required: { detail: string };
  /** The socket stopped for good: closed by the app, or signed out. */
  stopped: { reason: "closed" | "signed_out" };
};

/**
 * An event handler property. Checked bivariantly (method syntax), so that the
 * DOM's and `ws`'s richer event types fit.
 */
type Handler<E> = { handle(event: E): void }["handle"] | null;

/** A WHATWG-style WebSocket (browsers, Node 22+, `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown>;
  onmessage: Handler<{ data: unknown }>;
  onclose: Handler<{ code: number; reason: string }>;
  onerror: Handler<unknown>;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface BackoffOptions {
  /** The first delay (default 500 ms); doubled per failed attempt. */
  initialMs?: number;
  /** The longest delay (default 30 s). */
  maxMs?: number;
}

export interface RealtimeOptions {
  /** Resume after this seq (a seq the app kept from an earlier socket). */
  since?: number | null;
  backoff?: BackoffOptions;
  /** Defaults to the client's `WebSocket` option, then `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
}

const OPEN = 1;

export class RealtimeSocket extends Emitter<RealtimeEvents> {
  #url: string;
  #auth: Auth;
  #WebSocket: WebSocketConstructor;
  #initialMs: number;
  #maxMs: number;
  #socket: WebSocketLike | null = null;
  #lastSeq: number | null;
  #attempt = 0;
  #failedOpens = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;
  #connected = false;
  #resyncPending: string | null = null;
  #everOpened = false;
  #offSignedOut: () => void;

  constructor(baseUrl: string, auth: Auth, options: RealtimeOptions & { WebSocket: WebSocketConstructor }) {
    super();
    const url = new URL("/v1/realtime", baseUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    this.#url = url.toString();
    this.#auth = auth;
    this.#WebSocket = options.WebSocket;
    this.#initialMs = options.backoff?.initialMs ?? 500;
    this.#maxMs = options.backoff?.maxMs ?? 30_000;
    this.#lastSeq = options.since ?? null;
    this.#offSignedOut = auth.on("signedOut", () => this.#stop("signed_out"));
    void this.#connect();
  }

  /** The seq of the last event received: keep it to resume later. */
  get lastSeq(): number | null {
    return this.#lastSeq;
  }

  /** Whether a connection is open now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The current WebSocket, if any (for diagnostics and tests). */
  get socket(): WebSocketLike | null {
    return this.#socket;
  }

  /** Sends a frame; false when no connection is open (nothing is queued). */
  send(frame: ClientFrame): boolean {
    if (!this.#socket || this.#socket.readyState !== OPEN) return false;
    this.#socket.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Sends a message; the sender hears of it through its own
   * `message.created`, and of a refusal through an `error` with the same
   * `client_message_id`. Returns that id, or null when not connected.
   */
  sendMessage(conversationId: string, body: string, clientMessageId: string = randomId()): string | null {
    const sent = this.send({
      type: "message.send",
      conversation_id: conversationId,
      body,
      client_message_id: clientMessageId,
    });
    return sent ? clientMessageId : null;
  }

  /** Closes for good: no reconnect. */
  close(): void {
    this.#stop("closed");
  }

  async #connect(): Promise<void> {
    this.#timer = null;
    if (this.#stopped) return;
    let token: string | null;
    try {
      token = await this.#auth.accessToken();
    } catch {
      // The server is unreachable for a refresh too: try again later.
      this.#schedule(1006, "refresh failed");
      return;
    }
    if (this.#stopped) return;
    if (token === null) {
      this.#stop("signed_out");
      return;
    }
    const since = this.#lastSeq;
    const url = since === null ? this.#url : `${this.#url}?since=${since}`;
    let socket: WebSocketLike;
    try {
      socket = new this.#WebSocket(url, ["bearer", token]);
    } catch {
      this.#schedule(1006, "could not connect");
      return;
    }
    this.#socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.#connected = true;
      const reconnect = this.#everOpened;
      this.#everOpened = true;
      this.#attempt = 0;
      this.#failedOpens = 0;
      // A pong carries the latest seq, so a socket that drops before any
      // event still knows where to resume from.
      socket.send(JSON.stringify({ type: "ping" }));
      this.emit("open", { reconnect, since });
      if (this.#resyncPending !== null) {
        const detail = this.#resyncPending;
        this.#resyncPending = null;
        this.emit("resync_required", { detail });
      }
    };
    socket.onmessage = (event) => this.#receive(event.data);
    socket.onerror = () => {
      // A close event follows; it decides what happens next.
    };
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      this.#connected = false;
      if (!opened) this.#failedOpens += 1;
      if (this.#stopped) return;
      void this.#afterClose(event.code, event.reason, token);
    };
  }

  async #afterClose(code: number, reason: string, token: string): Promise<void> {
    // The handshake's 401 is invisible to browsers: after failed opens, or a
    // session-ended close, make sure the token is still good (a refresh that
    // fails signs out, which stops this socket).
    if (code === 4001 || this.#failedOpens >= 2) {
      try {
        await this.#auth.refresh(token);
      } catch {
        // Unreachable: the backoff below retries.
      }
      if (this.#stopped) return;
    }
    this.#schedule(code, reason);
  }

  #schedule(code: number, reason: string): void {
    if (this.#stopped) return;
    const resync = code === 4009;
    if (resync) {
      // Normally announced by an `error` frame first; the close code alone says the same.
      this.#lastSeq = null;
      this.#resyncPending ??= reason || "resync required";
    }
    // A resync reconnects at once: the app reloads while the new socket listens.
    const delay = resync ? 0 : this.#delay();
    this.#attempt += 1;
    this.emit("close", { code, reason, willReconnect: true, delayMs: delay });
    this.#timer = setTimeout(() => void this.#connect(), delay);
  }

  #delay(): number {
    return backoffDelay(this.#attempt, this.#initialMs, this.#maxMs);
  }

  #receive(data: unknown): void {
    const text = typeof data === "string" ? data : new TextDecoder().decode(data as ArrayBuffer);
    let event: ServerEvent;
    try {
      event = JSON.parse(text) as ServerEvent;
    } catch {
      return;
    }
    if (event.type === "error" && event.code === "resync_required") {
      // What this seq was followed by is gone: start over from now. The
      // server closes with 4009 next.
      this.#lastSeq = null;
      this.#resyncPending = event.detail;
      return;
    }
    if (typeof event.seq === "number" && (this.#lastSeq === null || event.seq > this.#lastSeq)) {
      this.#lastSeq = event.seq;
    }
    this.emit("event", event);
    this.emit(event.type, event as never);
  }

  #stop(reason: "closed" | "signed_out"): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#offSignedOut();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const socket = this.#socket;
    this.#socket = null;
    this.#connected = false;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.close(1000, reason);
    }
    this.emit("close", { code: 1000, reason, willReconnect: false, delayMs: null });
    this.emit("stopped", { reason });
  }
}

/**
 * The wait before reconnect attempt `attempt` (0-based): exponential, capped
 * at `maxMs`, with "equal jitter" (half fixed, half random) so that clients
 * dropped together do not come back together.
 */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** A client message id: a UUID where `crypto.randomUUID` exists (browsers
 * expose it only in secure contexts), else 122 bits of `getRandomValues`. */
function randomId(): string {
  const crypto = globalThis.crypto;
  if (typeof crypto?.randomUUID === "function") return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
