// What the tests share: the server under test (RABT_URL, started by
// scripts/test-against-server.sh), its mail folder, and accounts made
// through the real sign-up flow.

import { createHmac, randomUUID } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import WebSocket from "ws";

import { type ClientOptions, type RabtClient, createClient } from "../src/index.js";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests through scripts/test-against-server.sh`);
  return value;
}

export const baseUrl = required("RABT_URL");
const mailDir = required("RABT_MAIL_DIR");
const jwtSecret = required("RABT_TEST_JWT_SECRET");

export const PASSWORD = "plum-harbour-lantern-93";

/** A client with `ws` as its WebSocket and a log of the requests it sent. */
export function newClient(options: ClientOptions = {}): RabtClient & { requests: string[] } {
  const requests: string[] = [];
  const inner = options.fetch ?? globalThis.fetch;
  const fetch: typeof globalThis.fetch = (input, init) => {
    const request = input instanceof Request ? input : new Request(input, init);
    requests.push(`${request.method} ${new URL(request.url).pathname}`);
    return inner(input, init);
  };
  const client = createClient(baseUrl, {
    WebSocket,
    ...options,
    fetch,
  });
  return Object.assign(client, { requests });
}

export function uniqueEmail(label: string): string {
  return `ts-${label}-${randomUUID().slice(0, 8)}@example.com`;
}

/** The text of an .eml file with its quoted-printable and base64 parts decoded. */
function decodeMail(raw: string): string {
  const qp = raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, hex: string) =>
    String.fromCharCode(parseInt(hex, 16)),
  );
  const base64Parts = [...raw.matchAll(/Content-Transfer-Encoding: base64\r?\n(?:[^\r\n]+\r?\n)*\r?\n([A-Za-z0-9+/=\r\n]+)/gi)]
    .map((m) => Buffer.from((m[1] ?? "").replace(/\s+/g, ""), "base64").toString("utf8"))
    .join("\n");
  return `${qp}\n${base64Parts}`;
}

/** The verification token emailed to `address` (waits for the mail worker). */
export async function verificationToken(address: string, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let names: string[] = [];
    try {
      names = (await readdir(mailDir)).filter((n) => n.endsWith(".eml"));
    } catch {
      // Not created until the first mail.
    }
    for (const name of names) {
      const raw = await readFile(join(mailDir, name), "utf8");
      if (!raw.includes(address)) continue;
      const match = decodeMail(raw).match(/\/auth\/verify-email\?token=([A-Za-z0-9_%.~-]+)/);
      if (match?.[1]) return decodeURIComponent(match[1]);
    }
    await sleep(100);
  }
  throw new Error(`no verification mail for ${address} in ${mailDir}`);
}

/** A new account, verified through the emailed link and signed in on `client`. */
export async function signedUp(client: RabtClient, label: string): Promise<{ email: string; id: string }> {
  const email = uniqueEmail(label);
  await client.signUp({ email, password: PASSWORD, display_name: `Test ${label}` });
  const answer = await client.verifyEmail(await verificationToken(email));
  if (!("access_token" in answer)) throw new Error("unexpected second-factor challenge");
  return { email, id: answer.user.id };
}

/** The same access token, signed again with `exp` in the past. */
export function expired(accessToken: string): string {
  const [, payload] = accessToken.split(".");
  const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
  const now = Math.floor(Date.now() / 1000);
  const body = Buffer.from(JSON.stringify({ ...claims, iat: now - 3600, exp: now - 600 })).toString("base64url");
  const header = Buffer.from(JSON.stringify({ typ: "JWT", alg: "HS256" })).toString("base64url");
  const signature = createHmac("sha256", jwtSecret).update(`${header}.${body}`).digest("base64url");
  return `${header}.${body}.${signature}`;
}

/** Resolves when `check` holds, polling; rejects after `timeoutMs`. */
export async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** `promise`, or a rejection naming `what` after `timeoutMs`. */
export async function within<T>(promise: Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
