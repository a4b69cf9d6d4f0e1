import assert from "node:assert/strict";
import { describe, test } from "node:test";

import type { MessageEvent } from "../src/index.js";
import { eventually, newClient, signedUp, within } from "./server.js";

async function conversationOfTwo() {
  const alice = newClient();
  const bob = newClient();
  await signedUp(alice, "alice");
  const { id: bobId } = await signedUp(bob, "bob");
  const conversation = await alice.unwrap(
    alice.api.POST("/v1/conversations", { body: { participant_ids: [bobId] } }),
  );
  const send = (body: string) =>
    alice.unwrap(
      alice.api.POST("/v1/conversations/{id}/messages", { params: { path: { id: conversation.id } }, body: { body } }),
    );
  return { alice, bob, conversation, send };
}

describe("realtime", () => {
  test("a message is delivered live, and one sent while disconnected is replayed on reconnect", async () => {
    const { bob, conversation, send } = await conversationOfTwo();
    const socket = bob.realtime({ backoff: { initialMs: 400, maxMs: 2_000 } });
    const received: MessageEvent[] = [];
    socket.on("message.created", (event) => received.push(event));
    const opens: { reconnect: boolean; since: number | null }[] = [];
    socket.on("open", (event) => opens.push(event));
    try {
      await eventually(() => socket.connected, "the socket to open");

      await send("first, live");
      await eventually(() => received.length === 1, "the live message");
      const first = received[0]!;
      assert.equal(first.conversation_id, conversation.id);
      assert.equal(first.message.body, "first, live");
      assert.equal(socket.lastSeq, first.seq);

      // The connection drops; a message is sent before the socket is back.
      const closed = socket.next("close");
      socket.socket?.close();
      const close = await within(closed, "the close");
      assert.equal(close.willReconnect, true);
      await send("second, while away");
      const sentWhileAway = !socket.connected;

      await eventually(() => received.length === 2, "the replayed message");
      assert.ok(sentWhileAway, "the socket had reconnected before the second message was sent");
      assert.deepEqual(opens.at(-1), { reconnect: true, since: first.seq });
      const second = received[1]!;
      assert.equal(second.message.body, "second, while away");
      assert.ok(second.seq > first.seq);
      assert.equal(socket.lastSeq, second.seq);
    } finally {
      socket.close();
    }
  });

  test("a message sent over the socket comes back as message.created with its client id", async () => {
    const { alice, bob, conversation } = await conversationOfTwo();
    const aliceSocket = alice.realtime();
    const bobSocket = bob.realtime();
    try {
      await eventually(() => aliceSocket.connected && bobSocket.connected, "both sockets to open");
      const heard = bobSocket.next("message.created");
      const echoed = aliceSocket.next("message.created");

      const id = aliceSocket.sendMessage(conversation.id, "over the socket");

      assert.ok(id);
      assert.equal((await within(heard, "bob's message.created")).message.body, "over the socket");
      assert.equal((await within(echoed, "alice's own message.created")).message.client_message_id, id);
    } finally {
      aliceSocket.close();
      bobSocket.close();
    }
  });

  test("a since the server does not keep emits resync_required and resumes without since", async () => {
    const client = newClient();
    await signedUp(client, "resync");
    const socket = client.realtime({ since: 1_000_000, backoff: { initialMs: 100 } });
    try {
      const resync = await within(socket.next("resync_required"), "resync_required");

      assert.ok(resync.detail);
      assert.equal(socket.connected, true);
      await eventually(() => socket.lastSeq !== null && socket.lastSeq < 1_000_000, "the pong's seq");
    } finally {
      socket.close();
    }
  });

  test("signing out stops the socket", async () => {
    const client = newClient();
    await signedUp(client, "stop");
    const socket = client.realtime();
    await eventually(() => socket.connected, "the socket to open");
    const stopped = socket.next("stopped");

    await client.signOut();

    assert.deepEqual(await within(stopped, "the socket to stop"), { reason: "signed_out" });
    assert.equal(socket.connected, false);
  });
});
