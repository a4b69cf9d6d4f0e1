import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay } from "../src/index.js";

test("reconnect delays double from the first, stay under the cap, and are jittered", () => {
  const low = () => 0;
  const high = () => 1;

  assert.deepEqual(
    [0, 1, 2, 3].map((attempt) => backoffDelay(attempt, 500, 30_000, high)),
    [500, 1000, 2000, 4000],
  );
  assert.equal(backoffDelay(0, 500, 30_000, low), 250);
  assert.equal(backoffDelay(20, 500, 30_000, high), 30_000);
  assert.equal(backoffDelay(1_000, 500, 30_000, low), 15_000);
  const seen = new Set(Array.from({ length: 20 }, () => backoffDelay(3, 500, 30_000)));
  assert.ok(seen.size > 1, "delays of the same attempt differ");
  for (const delay of seen) assert.ok(delay >= 2000 && delay <= 4000);
});
