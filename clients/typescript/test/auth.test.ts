import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { RabtError } from "../src/index.js";
import { PASSWORD, baseUrl, expired, newClient, signedUp } from "./server.js";

describe("auth", () => {
  test("a sign-up is verified through the emailed link and signs in", async () => {
    const client = newClient();
    const signedIn: string[] = [];
    client.auth.on("signedIn", ({ user }) => signedIn.push(user.email));

    const { email } = await signedUp(client, "signup");

    assert.deepEqual(signedIn, [email]);
    const me = await client.me();
    assert.equal(me.email, email);
    assert.equal(me.email_verified, true);
  });

  test("sign-in keeps the tokens and sends them; sign-out ends the session", async () => {
    const { email } = await signedUp(newClient(), "signin");
    const client = newClient();

    const answer = await client.signIn({ email, password: PASSWORD });

    assert.ok("access_token" in answer);
    const tokens = await client.auth.tokens();
    assert.equal(tokens?.accessToken, answer.access_token);
    assert.ok(tokens?.refreshToken);
    assert.equal((await client.me()).email, email);

    await client.signOut();
    assert.equal(await client.auth.tokens(), null);
    // The server ended the session: its refresh token is refused.
    const refresh = await fetch(`${baseUrl}/v1/auth/token/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: tokens.refreshToken }),
    });
    assert.equal(refresh.status, 401);
  });

  test("a wrong password is a RabtError invalid_credentials", async () => {
    const { email } = await signedUp(newClient(), "wrongpw");
    const client = newClient();

    const error = await client.signIn({ email, password: "not-the-password-1" }).catch((e: unknown) => e);

    assert.ok(error instanceof RabtError);
    assert.equal(error.status, 401);
    assert.equal(error.code, "invalid_credentials");
    assert.equal(await client.auth.tokens(), null);
  });

  test("concurrent calls with an expired access token share one refresh, and all succeed", async () => {
    const client = newClient();
    const { id } = await signedUp(client, "race");
    const before = await client.auth.tokens();
    assert.ok(before?.refreshToken);
    // An access token the server answers with 401 token_expired, and no
    // expiry known to the client, so every call goes out and fails first.
    await client.auth.storage.set({ ...before, accessToken: expired(before.accessToken), expiresAt: null });
    client.requests.length = 0;

    const results = await Promise.all([
      client.me(),
      client.me(),
      client.unwrap(client.api.GET("/v1/auth/sessions")),
      client.unwrap(client.api.GET("/v1/projects", { params: { query: { limit: 5 } } })),
      client.unwrap(client.api.GET("/v1/users/{id}", { params: { path: { id } } })),
      client.me(),
    ]);

    const refreshes = client.requests.filter((r) => r === "POST /v1/auth/token/refresh");
    assert.equal(refreshes.length, 1, `one refresh expected, saw: ${client.requests.join(", ")}`);
    assert.equal(client.auth.refreshCount, 1);
    assert.equal(results.length, 6);
    assert.equal(results[0].id, id);
    const after = await client.auth.tokens();
    assert.notEqual(after?.refreshToken, before.refreshToken);
    assert.ok(after?.expiresAt && after.expiresAt > Date.now());
    // The rotated token works; the session was not revoked as a reuse.
    assert.ok((await client.auth.refresh())?.accessToken);
    assert.equal((await client.me()).id, id);
  });

  test("an access token about to expire is refreshed before the call, not after a 401", async () => {
    const client = newClient();
    await signedUp(client, "ahead");
    const tokens = await client.auth.tokens();
    assert.ok(tokens);
    await client.auth.storage.set({ ...tokens, expiresAt: Date.now() + 1_000 });
    client.requests.length = 0;

    await client.me();

    assert.deepEqual(client.requests, ["POST /v1/auth/token/refresh", "GET /v1/me"]);
  });

  test("a 401 other than token_expired is not refreshed", async () => {
    const client = newClient();
    await signedUp(client, "bad-token");
    const tokens = await client.auth.tokens();
    assert.ok(tokens);
    await client.auth.storage.set({ ...tokens, accessToken: `${tokens.accessToken}x`, expiresAt: null });
    client.requests.length = 0;

    const error = await client.me().catch((e: unknown) => e);

    assert.ok(error instanceof RabtError);
    assert.equal(error.code, "unauthorized");
    assert.deepEqual(client.requests, ["GET /v1/me"]);
    assert.ok(await client.auth.tokens(), "the tokens are kept");
  });

  test("a refresh the server refuses clears the tokens and emits signedOut", async () => {
    const client = newClient();
    await signedUp(client, "revoked");
    const tokens = await client.auth.tokens();
    assert.ok(tokens);
    // The session ends behind the client's back.
    const logout = await fetch(`${baseUrl}/v1/auth/logout`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${tokens.accessToken}` },
      body: JSON.stringify({ scope: "session" }),
    });
    assert.equal(logout.status, 204);
    await client.auth.storage.set({ ...tokens, accessToken: expired(tokens.accessToken), expiresAt: null });
    const signedOut = client.auth.next("signedOut");

    const error = await client.me().catch((e: unknown) => e);

    assert.ok(error instanceof RabtError);
    assert.equal(error.status, 401);
    const event = await signedOut;
    assert.equal(event.reason, "refresh_failed");
    assert.equal(event.error?.status, 401);
    assert.equal(await client.auth.tokens(), null);
  });
});
