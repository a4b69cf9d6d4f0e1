// Loads rabt's /docs in a real headless Chromium with every request to
// another origin refused, waits for the API reference to render, checks that
// the operation list is there, and takes a screenshot a person can look at.
//
//   node scripts/lib/docs-browser.mjs BASE_URL SCREENSHOT_PATH
//
// playwright-core drives Debian's chromium (CHROMIUM, default
// /usr/bin/chromium); it downloads no browser of its own.
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error("usage: docs-browser.mjs BASE_URL SCREENSHOT_PATH");
  process.exit(2);
}
const origin = new URL(base).origin;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const refused = [];
const violations = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // The network is cut off from everything but the server.
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + "/") || url.startsWith("data:")) {
      return route.continue();
    }
    refused.push(url);
    return route.abort("blockedbyclient");
  });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy/i.test(message.text())) {
      violations.push(message.text());
    }
  });
  const response = await page.goto(`${origin}/docs`, { waitUntil: "load" });
  if (!response || response.status() !== 200) {
    throw new Error(`/docs answered ${response && response.status()}`);
  }
  // RapiDoc renders into its shadow root; Playwright's text locators pierce it.
  await page.getByText("/v1/projects", { exact: false }).first().waitFor({ timeout: 30_000 });
  const operations = await page.getByText("/v1/", { exact: false }).count();
  await page.screenshot({ path: screenshot, fullPage: false });
  if (refused.length > 0) {
    throw new Error(`the page asked for other origins: ${refused.join(", ")}`);
  }
  // RapiDoc declares Open Sans from Google Fonts; the policy refuses it and
  // the page falls back to the system fonts it names. Any other refusal (a
  // script, a request) is a failure.
  const fonts = violations.filter((v) => /font-src/.test(v));
  const others = violations.filter((v) => !/font-src/.test(v));
  if (others.length > 0) {
    throw new Error(`the page broke its own policy: ${others.join(" | ")}`);
  }
  if (fonts.length > 0) {
    console.log(`docs: ${fonts.length} web font(s) from another origin refused by the policy, as expected`);
  }
  console.log(`docs: "/v1/projects" rendered, ${operations} operation paths shown, screenshot ${screenshot}`);
} finally {
  await browser.close();
}
