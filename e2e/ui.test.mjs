// Stagehand in a real headless Chromium: an admin sets a team up and
// creates a custom role, a lead edits a dev flow, previews, plays and sees
// the history entry, a viewer sees no play button and no values but exports
// the history; a revealed value and a new token's secret never come back
// with Back (htmx keeps no history snapshots, nothing is cached), not even
// after logout. Then each role (admin, lead, viewer) walks every page it can
// see at 1280 px and at 390 px: axe-core finds no serious or critical
// violation, nothing logs an error, and on the phone nothing runs off the
// screen. Started by scripts/e2e.sh, which builds the binary, provides a
// database and installs Chromium and the npm packages (playwright-core,
// axe-core).
//
// Env: STAGEHAND_BIN (the binary), STAGEHAND_E2E_DATABASE_URL (optional: an
// empty PostgreSQL database; else SQLite in a temp dir), E2E_ARTIFACTS
// (where screenshots go; outside git).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";

// axe-core's browser build, evaluated in each page we check (see check()).
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const BIN = process.env.STAGEHAND_BIN;
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(tmpdir(), "stagehand-e2e");
const PASSWORD = "a long enough password";
const SECRET = "dev-secret-value-7c1e";
mkdirSync(ARTIFACTS, { recursive: true });

const env = {
  ...process.env,
  STAGEHAND_DATA_DIR: mkdtempSync(join(tmpdir(), "stagehand-e2e-data-")),
  RUST_LOG: "warn",
};
if (process.env.STAGEHAND_E2E_DATABASE_URL) {
  env.DATABASE_URL = process.env.STAGEHAND_E2E_DATABASE_URL;
} else {
  delete env.DATABASE_URL;
}

let server;
let browser;
let base;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

function run(args, input) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { env, stdio: ["pipe", "inherit", "inherit"] });
    p.stdin.end(input ?? "");
    p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${args} exited ${code}`))));
  });
}

async function waitForHealth(url) {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the server did not start");
}

before(async () => {
  assert.ok(BIN, "STAGEHAND_BIN must point at the stagehand binary");
  await run(["user", "create", "root", "--admin", "--password-stdin"], `${PASSWORD}\n`);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ["serve", "--bind", `127.0.0.1:${port}`], { env, stdio: "inherit" });
  await waitForHealth(`${base}/healthz`);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
});

/**
 * A page in a fresh browser context (its own cookies) that records what the
 * browser logs as an error (`page.errors`) and what check() finds
 * (`page.problems`).
 */
async function freshPage(viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ acceptDownloads: true, viewport });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(`console: ${m.text()} (${m.location().url})`));
  page.on("pageerror", (e) => errors.push(`pageerror: ${e}`));
  page.errors = errors;
  page.problems = [];
  return page;
}

/** A fresh browser context logged in as `user`. */
async function loginAs(user, viewport) {
  const page = await freshPage(viewport);
  await page.goto(`${base}/`);
  await page.waitForURL(/\/login/);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", PASSWORD);
  await Promise.all([page.waitForURL(`${base}/`), page.click("button[type=submit]")]);
  return page;
}

/**
 * Checks the page as it is now and keeps a screenshot of it: axe-core finds
 * no serious or critical violation, the browser logged no error since the
 * last check, and at phone width nothing is wider than the screen and every
 * link of the top bar and every stage card is on it. What is wrong goes to
 * `page.problems`, for assertClean() at the end of the test, so that one
 * run names every page's problems at once.
 *
 * `expectedErrors` are console messages the page is meant to cause (a 404
 * page makes Chromium log "Failed to load resource: the server responded
 * with a status of 404").
 */
async function check(page, name, { screenshot = true, expectedErrors = [] } = {}) {
  const { width } = page.viewportSize();
  const where = `${name} at ${width}px (${new URL(page.url()).pathname})`;
  await page.waitForLoadState("load");
  // axe goes in through page.evaluate of its source, i.e. the DevTools
  // protocol's Runtime.evaluate, which the page's Content-Security-Policy
  // does not govern (only the page's own scripts are bound by it). A
  // <script> tag would be blocked by `script-src 'self'`, and a context with
  // bypassCSP would check pages without the CSP they really run under, so a
  // CSP violation of the app itself could go unnoticed.
  if (!(await page.evaluate(() => typeof window.axe === "object"))) {
    await page.evaluate(AXE_SOURCE);
  }
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(" ")) }));
  });
  for (const v of violations) {
    page.problems.push(`${where}: ${v.impact} ${v.id} (${v.help}) on ${v.targets.join(", ")}`);
  }
  const errors = page.errors.splice(0).filter((e) => !expectedErrors.some((x) => e.includes(x)));
  for (const e of errors) page.problems.push(`${where}: ${e}`);
  if (width <= 390) {
    const offScreen = await page.evaluate((vw) => {
      const out = [];
      const scroll = document.documentElement.scrollWidth;
      if (scroll > vw) out.push(`the page is ${scroll}px wide`);
      for (const el of document.querySelectorAll("header.top a, header.top button, li.stage")) {
        const box = el.getBoundingClientRect();
        if (box.left < 0 || box.right > vw + 0.5) {
          out.push(`"${el.textContent.trim().slice(0, 30)}" spans ${Math.round(box.left)}..${Math.round(box.right)}px`);
        }
      }
      return out;
    }, width);
    for (const o of offScreen) page.problems.push(`${where}: ${o}`);
  }
  if (screenshot) {
    await page.screenshot({ path: join(ARTIFACTS, `${name}-${width}.png`), fullPage: true });
  }
}

/** Fails with everything check() found on this page during the test. */
function assertClean(page) {
  page.problems.push(...page.errors.splice(0).map((e) => `after the last check: ${e}`));
  assert.ok(page.problems.length === 0, `\n${page.problems.join("\n")}`);
}

/**
 * Clicks a submit button and waits until htmx has swapped in the page the
 * form led to (forms are boosted: no full navigation to wait for).
 */
async function submit(page, selector) {
  await page.evaluate(() => {
    window.__settled = new Promise((resolve) =>
      document.body.addEventListener("htmx:afterSettle", () => resolve(), { once: true }),
    );
  });
  await page.click(selector);
  await page.evaluate(() => window.__settled);
}

const state = {};

test("an admin sets up a team, creates a custom role and binds it", async () => {
  const page = await loginAs("root");
  await page.click("text=Admin");
  await page.waitForURL(/\/admin$/);
  for (const user of ["lena", "vera", "rita"]) {
    await page.fill("form[action='/admin/users'] input[name=username]", user);
    await page.fill("form[action='/admin/users'] input[name=password]", PASSWORD);
    await submit(page, "form[action='/admin/users'] button[type=submit]");
    await page.waitForSelector(`td:text-is("${user}")`);
  }
  await page.fill("form[action='/admin/teams'] input[name=name]", "payments");
  await submit(page, "form[action='/admin/teams'] button[type=submit]");
  await page.waitForURL(/\/teams\/[0-9a-f-]+\/members$/);
  state.team = page.url().match(/teams\/([0-9a-f-]+)\//)[1];

  for (const [user, role] of [["lena", "lead"], ["vera", "viewer"]]) {
    await page.fill("input[name=username]", user);
    await page.selectOption("select[name=role]", role);
    await submit(page, "form[action$='/members'] button[type=submit]");
  }
  // A custom role from ticked permissions, then bound to rita.
  await page.fill("form[action$='/roles'] input[name=name]", "release manager");
  await page.check("input[value='pipeline.view']");
  await page.check("input[value='stage.promote']");
  await submit(page, "form[action$='/roles'] button[type=submit]");
  await page.waitForSelector("li strong:text-is('release manager')");
  await page.fill("input[name=username]", "rita");
  await page.selectOption("select[name=role]", "release manager");
  await submit(page, "form[action$='/members'] button[type=submit]");
  const members = await page.textContent("main");
  assert.match(members, /lena\s+lead/);
  assert.match(members, /rita\s+release manager/);
  await check(page, "admin-members");

  // Instances, a flow and a secret on dev, and the pipeline dev → prod.
  await page.goto(`${base}/teams/${state.team}/instances`);
  for (const name of ["dev", "prod"]) {
    await page.fill("input[name=name]", name);
    await submit(page, "form[action$='/instances'] button[type=submit]");
    await page.waitForURL(/\/instances\/[0-9a-f-]+$/);
    state[name] = page.url().split("/").pop();
    await page.goto(`${base}/teams/${state.team}/instances`);
  }
  await page.goto(`${base}/teams/${state.team}/instances/${state.dev}`);
  await page.click("summary:text('New flow')");
  await page.fill("form[action$='/flows'] input[name=name]", "orders");
  await page.fill("form[action$='/flows'] textarea[name=content]", '{"steps": ["charge"]}');
  await submit(page, "form[action$='/flows'] button[type=submit]");
  await page.goto(`${base}/teams/${state.team}/instances/${state.dev}`);
  await page.fill("input[name=key]", "API_TOKEN");
  await submit(page, "form[action$='/env'] button[type=submit]");
  await page.fill("input[aria-label='New value of API_TOKEN']", SECRET);
  await submit(page, "button[name=action][value=set]");
  assert.ok(!(await page.content()).includes(SECRET), "values are masked");

  await page.goto(`${base}/teams/${state.team}`);
  await page.fill("input[name=name]", "checkout");
  await submit(page, "form[action$='/pipelines'] button[type=submit]");
  await page.waitForURL(/\/pipelines\/[0-9a-f-]+$/);
  state.pipeline = page.url().split("/").pop();
  for (const name of ["dev", "prod"]) {
    await page.selectOption("select[name=instance]", { label: name });
    await submit(page, "form[action$='/stages'] button[type=submit]");
  }
  assert.equal(await page.locator("li.stage").count(), 2);
  await check(page, "admin-pipeline");
  assertClean(page);
});

/** From the pipeline page: play on dev, check the preview, confirm. */
async function play(page, expectInPreview) {
  await page.goto(`${base}/teams/${state.team}/pipelines/${state.pipeline}`);
  assert.equal(await page.locator("a.play").count(), 1, "play on dev only, not on the last stage");
  await Promise.all([page.waitForURL(/\/preview$/), page.click("a.play")]);
  const preview = await page.textContent("main");
  assert.match(preview, /Promote dev → prod/);
  assert.match(preview, expectInPreview);
  assert.ok(!preview.includes(SECRET));
  return preview;
}

async function confirm(page) {
  await Promise.all([page.waitForURL(/\/promotions\/[0-9a-f-]+$/), page.click("button.play")]);
  assert.match(await page.textContent("h1"), /applied/);
}

test("a lead edits a dev flow, previews, plays and sees the history entry", async () => {
  const page = await loginAs("lena");
  // The first play brings the flow and the key (without its value) to prod.
  const first = await play(page, /API_TOKEN/);
  assert.match(first, /Added\s*orders/);
  await confirm(page);

  // Edit the dev flow; the next preview shows a readable diff.
  await page.goto(`${base}/teams/${state.team}/instances/${state.dev}/flows/orders`);
  await page.fill("textarea[name=content]", '{"steps": ["charge", "email"]}');
  await submit(page, "button:text('Save flow')");
  await play(page, /Changed\s*orders/);
  await page.click("summary:has-text('Changed: orders')");
  assert.match(await page.textContent(".diff pre"), /\+\s+"email"/);
  await check(page, "lead-preview");
  await confirm(page);
  await check(page, "lead-promotion");

  await page.click("nav >> text=History");
  await page.waitForURL(/\/promotions$/);
  const history = await page.textContent("table");
  assert.equal((history.match(/dev → prod/g) ?? []).length, 2);
  assert.match(history, /lena/);
  await check(page, "lead-history");
  assertClean(page);
});

test("a form error lands in the form, keeps what the lead typed and marks the field", async () => {
  for (const viewport of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
    const page = await loginAs("lena", viewport);
    const flowPage = `${base}/teams/${state.team}/instances/${state.dev}/flows/orders`;
    await page.goto(flowPage);
    const pasted = '{"steps": ["charge", "email", "ship"'; // cut short while pasting
    await page.fill("textarea[name=content]", pasted);
    await submit(page, "button:text('Save flow')");
    const alert = page.locator("form .form-error [role=alert]");
    assert.match(await alert.textContent(), /Content: is not valid JSON/);
    assert.equal(await page.inputValue("textarea[name=content]"), pasted, "the paste is kept");
    assert.equal(page.url(), flowPage, "still on the flow's page");
    const outline = await page.$eval("textarea[name=content]", (e) => getComputedStyle(e).outlineStyle);
    assert.equal(outline, "solid", "the field is marked");
    await check(page, `lead-form-error`, { expectedErrors: ["status of 422"] });
    // Fixed and sent again: saved, and the page says so.
    await page.fill("textarea[name=content]", '{"steps": ["charge", "email"]}');
    await submit(page, "button:text('Save flow')");
    assert.equal(await page.locator(".form-error [role=alert]").count(), 0);
    assertClean(page);
    await page.context().close();
  }
});

test("a viewer sees no play button and no values, and exports the history", async () => {
  const page = await loginAs("vera");
  await page.goto(`${base}/teams/${state.team}/pipelines/${state.pipeline}`);
  assert.equal(await page.locator("a.play").count(), 0);
  assert.equal(await page.locator("form[action$='/stages']").count(), 0);
  await page.goto(`${base}/teams/${state.team}/instances/${state.dev}`);
  const html = await page.content();
  assert.ok(html.includes("API_TOKEN"));
  assert.ok(!html.includes(SECRET), "no value on a viewer's page");
  assert.equal(await page.locator("button:text('Reveal')").count(), 0);
  await check(page, "viewer-instance");
  await page.goto(`${base}/teams/${state.team}/promotions`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=CSV")]);
  const csv = readFileSync(await download.path(), "utf8");
  assert.match(csv, /^id,created_at,pipeline,from,to,status,requested_by,summary\n/);
  assert.equal((csv.match(/checkout,dev,prod,applied,lena/g) ?? []).length, 2);
  assert.ok(!csv.includes(SECRET));
  assertClean(page);
});

/** Everything htmx or anything else keeps in this tab's sessionStorage. */
async function sessionStorageText(page) {
  return page.evaluate(() => {
    let all = "";
    for (let i = 0; i < sessionStorage.length; i++) {
      const key = sessionStorage.key(i);
      all += `${key}=${sessionStorage.getItem(key)}\n`;
    }
    return all;
  });
}

/** Back, then whatever htmx fetches or restores for that entry. */
async function back(page) {
  await page.goBack();
  await page.waitForLoadState("networkidle");
  await page.waitForTimeout(200);
}

async function assertNoSecret(page, secret, when) {
  assert.ok(!(await page.content()).includes(secret), `the value is shown ${when}`);
  assert.ok(!(await sessionStorageText(page)).includes(secret), `sessionStorage holds the value ${when}`);
}

test("a revealed value and a new token's secret do not come back with Back, nor after logout", async () => {
  const page = await loginAs("root");
  const instance = `${base}/teams/${state.team}/instances/${state.dev}`;
  const onInstance = (url) => url.pathname.endsWith(`/instances/${state.dev}`);
  await page.goto(instance);
  for (let round = 0; round < 2; round++) {
    await Promise.all([
      page.waitForURL(/\/env\/API_TOKEN\/reveal$/),
      page.click("form[action$='/env/API_TOKEN/reveal'] button"),
    ]);
    assert.ok((await page.textContent("pre.secret")).includes(SECRET), "the reveal shows the value");
    if (round === 0) await check(page, "admin-revealed", { screenshot: false });
    // Away through the page's own (boosted) link, then Back.
    await page.click("text=Back to dev");
    await page.waitForURL(onInstance);
    await page.waitForLoadState("networkidle");
    await assertNoSecret(page, SECRET, "on the instance page");
    await back(page);
    await assertNoSecret(page, SECRET, "after Back");
    await page.goto(instance);
  }

  // Away from the reveal by a full navigation, then Back: the browser has
  // nothing to show (no-store) and must not send the form again by itself.
  await Promise.all([
    page.waitForURL(/\/reveal$/),
    page.click("form[action$='/env/API_TOKEN/reveal'] button"),
  ]);
  await page.goto(`${base}/teams/${state.team}`);
  await page.goBack().catch(() => {}); // net::ERR_CACHE_MISS: fine
  await page.waitForTimeout(200);
  assert.ok(!(await page.content()).includes(SECRET), "the value is shown after a full navigation and Back");
  await page.goto(instance);

  // A token's secret, shown once.
  await page.goto(`${base}/teams/${state.team}/tokens`);
  await page.fill("input[name=name]", "e2e-once");
  await Promise.all([page.waitForLoadState("load"), page.click("button:text('Create token')")]);
  const tokenSecret = (await page.textContent("pre.secret")).trim();
  assert.match(tokenSecret, /^sh_/);
  await check(page, "admin-token-created", { screenshot: false });
  await page.click("nav >> text=History");
  await page.waitForURL(/\/promotions$/);
  await page.waitForLoadState("networkidle");
  await assertNoSecret(page, tokenSecret, "after leaving the tokens page");
  await back(page);
  await assertNoSecret(page, tokenSecret, "after Back to the tokens page");

  // Reveal once more, leave, log out: Back shows neither the value nor any
  // page of the team.
  await page.goto(instance);
  await Promise.all([
    page.waitForURL(/\/reveal$/),
    page.click("form[action$='/env/API_TOKEN/reveal'] button"),
  ]);
  await page.click("text=Back to dev");
  await page.waitForURL(onInstance);
  await page.waitForLoadState("networkidle");
  await submit(page, "button:text('Log out')");
  await page.waitForURL(/\/login$/);
  for (let i = 0; i < 3; i++) {
    await back(page);
    await assertNoSecret(page, SECRET, `after logout and ${i + 1} × Back`);
    await assertNoSecret(page, tokenSecret, `after logout and ${i + 1} × Back`);
    const main = (await page.textContent("body")) ?? "";
    assert.ok(!main.includes("API_TOKEN"), `a team page is shown after logout (${page.url()})`);
  }
  assertClean(page);
});

test("a lead requests a promotion into a protected prod, which waits for an approval", async () => {
  const admin = await loginAs("root");
  await admin.goto(`${base}/teams/${state.team}/instances/${state.prod}`);
  await admin.fill("#protection input[name=required_approvals]", "1");
  await submit(admin, "#protection button:text('Save protection')");
  assert.match(await admin.textContent("#protection"), /protected: 1 approval/);
  assertClean(admin);

  const page = await loginAs("lena");
  await page.goto(`${base}/teams/${state.team}/instances/${state.dev}/flows/orders`);
  await page.fill("textarea[name=content]", '{"steps": ["charge", "email", "ship"]}');
  await submit(page, "button:text('Save flow')");
  await play(page, /Changed\s*orders/);
  await Promise.all([page.waitForURL(/\/promotions\/[0-9a-f-]+$/), page.click("button.play:text('Request promotion')")]);
  assert.match(await page.textContent("h1"), /awaiting approval/);
  state.pending = page.url().split("/").pop();
  assertClean(page);
});

test("a lead restores prod to one of its snapshots from the snapshot's page, which waits for an approval", async () => {
  const page = await loginAs("lena");
  const t = `${base}/teams/${state.team}`;
  // prod's backup from the first promotion into it: prod before it.
  await page.goto(`${t}/promotions?status=applied`);
  await page.goto(new URL(await page.locator("table a[href*='/promotions/']").last().getAttribute("href"), base).href);
  const compare = new URL(await page.getAttribute("a:text('compare with the source')", "href"), base);
  state.backup = compare.searchParams.get("from");
  await page.goto(`${t}/snapshots/${state.backup}`);
  await Promise.all([page.waitForURL(/\/restore\?snapshot=/), page.click("a:text('Preview restoring prod to it')")]);
  state.restore = new URL(page.url()).pathname + new URL(page.url()).search;
  assert.match(await page.textContent("h1"), /Restore prod to snapshot/);
  const preview = await page.textContent("main");
  assert.match(preview, /Removed\s*orders/, "prod had no flow before its first promotion");
  assert.match(preview, /prod is protected/);
  assert.ok(!preview.includes(SECRET));
  await check(page, "lead-restore-preview");
  await Promise.all([page.waitForURL(/\/promotions\/[0-9a-f-]+$/), page.click("button.play:text('Request the restore')")]);
  assert.match(await page.textContent("h1"), /Restore of prod/);
  assert.match(await page.textContent("h1"), /awaiting approval/);
  await check(page, "lead-restore-requested");
  assertClean(page);
});

/**
 * Every page `user` can see, at 1280 px and at 390 px, each checked by
 * check(): one pass per width, in one logged-in context. Screenshots go to
 * E2E_ARTIFACTS/`dir`/.
 */
async function walk(user, dir, paths) {
  mkdirSync(join(ARTIFACTS, dir), { recursive: true });
  const page = await loginAs(user);
  for (const [width, height] of [[1280, 800], [390, 844]]) {
    await page.setViewportSize({ width, height });
    for (const [name, path, status = 200] of paths) {
      const response = await page.goto(`${base}${path}`);
      assert.equal(response.status(), status, `${name}: ${path}`);
      // Chromium logs an error status of the document itself to the console.
      const expectedErrors = status === 200 ? [] : [`status of ${status}`];
      await check(page, `${dir}/${name}`, { expectedErrors });
    }
  }
  assertClean(page);
}

/** The pages every role of the team sees, with the ids the tests made. */
async function teamPages() {
  const t = `/teams/${state.team}`;
  if (!state.applied) {
    // The first promotion lena applied, and the snapshots it took.
    const page = await loginAs("vera");
    await page.goto(`${base}${t}/promotions?status=applied`);
    const links = page.locator("table a[href*='/promotions/']");
    state.applied = (await links.last().getAttribute("href")).split("/").pop();
    await page.goto(`${base}${t}/promotions/${state.applied}`);
    state.compare = new URL(await page.getAttribute("a:text('compare with the source')", "href"), base);
    state.snapshot = state.compare.searchParams.get("to");
    await page.goto(`${base}${t}/pipelines/${state.pipeline}`);
    state.stage = await page.getAttribute("li.stage", "id");
    await page.context().close();
  }
  const stage = state.stage.replace(/^stage-/, "");
  return [
    ["dashboard", "/"],
    ["team", t],
    ["instances", `${t}/instances`],
    ["instance", `${t}/instances/${state.dev}`],
    ["flow", `${t}/instances/${state.dev}/flows/orders`],
    ["pipeline", `${t}/pipelines/${state.pipeline}`],
    ["preview", `${t}/pipelines/${state.pipeline}/stages/${stage}/preview`],
    ["preview-snapshot", `${t}/pipelines/${state.pipeline}/stages/${stage}/preview?snapshot=${state.snapshot}`],
    ["pipeline-metrics", `${t}/pipelines/${state.pipeline}/metrics`],
    ["team-metrics", `${t}/metrics?days=7`],
    ["promotion-applied", `${t}/promotions/${state.applied}`],
    ["promotion-pending", `${t}/promotions/${state.pending}`],
    ["history", `${t}/promotions`],
    ["audit", `${t}/audit`],
    ["snapshot", `${t}/snapshots/${state.snapshot}`],
    ["restore", state.restore],
    ["compare", `${state.compare.pathname}${state.compare.search}`],
    ["not-found", `${t}/instances/00000000-0000-0000-0000-000000000000`, 404],
  ];
}

test("an admin's pages pass axe at 1280 and 390 px", async () => {
  const t = `/teams/${state.team}`;
  await walk("root", "admin", [
    ...(await teamPages()),
    ["members", `${t}/members`],
    ["tokens", `${t}/tokens`],
    ["platform", "/admin"],
    ["platform-audit", "/admin/audit"],
  ]);
});

test("a lead's pages pass axe at 1280 and 390 px", async () => {
  const pages = await teamPages();
  // Undoing is previewed: for those who may undo.
  await walk("lena", "lead", [...pages, ["undo", `/teams/${state.team}/promotions/${state.applied}/rollback`]]);
});

test("a viewer's pages pass axe at 1280 and 390 px", async () => {
  await walk("vera", "viewer", await teamPages());
});

test("the login page passes axe at 1280 and 390 px, with and without an error", async () => {
  const page = await freshPage();
  for (const [width, height] of [[1280, 800], [390, 844]]) {
    await page.setViewportSize({ width, height });
    await page.goto(`${base}/login`);
    await check(page, "login");
  }
  await page.fill("input[name=username]", "nobody");
  await page.fill("input[name=password]", "not the password");
  await page.click("button[type=submit]");
  await page.waitForSelector("p.error");
  await check(page, "login-failed", { expectedErrors: ["status of 401"] });
  assertClean(page);
});
