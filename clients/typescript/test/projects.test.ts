import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";

import { RabtError } from "../src/index.js";
import { newClient, signedUp } from "./server.js";

describe("projects", () => {
  test("a project is created and read back", async () => {
    const client = newClient();
    const { id: owner } = await signedUp(client, "projects");

    const created = await client.unwrap(
      client.api.POST("/v1/projects", {
        body: { title: "Solar map of allotments", summary: "A map", skills: [], remote: true },
      }),
    );
    const read = await client.unwrap(client.api.GET("/v1/projects/{id}", { params: { path: { id: created.id } } }));

    assert.equal(read.id, created.id);
    assert.equal(read.title, "Solar map of allotments");
    assert.equal(read.status, "draft");
    assert.equal(read.owner.id, owner);
  });

  test("a problem+json answer becomes a RabtError with code, field errors and request id", async () => {
    const client = newClient();
    await signedUp(client, "problem");

    const call = client.api.POST("/v1/projects", { body: { title: "" } });
    const { response } = await call;
    const error = await client.unwrap(call).catch((e: unknown) => e);

    assert.ok(error instanceof RabtError);
    assert.equal(error.status, 422);
    assert.equal(error.code, "validation_failed");
    assert.equal(error.errors[0]?.field, "title");
    assert.ok(error.fieldError("title")?.code);
    assert.ok(error.request_id);
    assert.equal(error.request_id, response.headers.get("x-request-id"));
  });

  test("a project nobody can see is a RabtError not_found", async () => {
    const client = newClient();

    const error = await client
      .unwrap(client.api.GET("/v1/projects/{id}", { params: { path: { id: randomUUID() } } }))
      .catch((e: unknown) => e);

    assert.ok(error instanceof RabtError);
    assert.equal(error.status, 404);
    assert.equal(error.code, "not_found");
    assert.ok(error.request_id);
  });
});
