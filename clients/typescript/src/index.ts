// @rabt/client: a typed client of the rabt API.

export { createClient } from "./client.js";
export type { Api, ClientOptions, MfaPending, RabtClient, Schemas, SignInAnswer } from "./client.js";
export { Auth, memoryStorage } from "./auth.js";
export type { AuthEvents, Me, SignedOutReason, TokenPair, TokenStorage, Tokens } from "./auth.js";
export { RabtError, isProblem } from "./errors.js";
export type { FieldError, Problem } from "./errors.js";
export { RealtimeSocket, backoffDelay } from "./realtime.js";
export type {
  BackoffOptions,
  ClientFrame,
  ConversationReadEvent,
  ErrorEvent,
  Message,
  MessageEvent,
  Notification,
  NotificationEvent,
  PongEvent,
  RealtimeEvents,
  RealtimeOptions,
  ServerEvent,
  TypingEvent,
  WebSocketConstructor,
  WebSocketLike,
} from "./realtime.js";
export type { components, operations, paths } from "./schema.js";
