// Stagehand in a real headless Chromium: an admin sets a team up and
// creates a custom role, a lead edits a dev flow, previews, plays and sees
// the history entry, a viewer sees no play button and no values but exports
// the history; a revealed value and a new token's secret never come back
// with Back (htmx keeps no history snapshots, nothing is cached), not even
// after logout. Started by scripts/e2e.sh, which builds the binary, provides
// a database and installs Chromium and playwright-core.
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
import { join } from "node:path";
import { chromium } from "playwright-core";

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

/** A fresh browser context (its own cookies) logged in as `user`. */
async function loginAs(user) {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  page.errors = errors;
  await page.goto(`${base}/`);
  await page.waitForURL(/\/login/);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", PASSWORD);
  await Promise.all([page.waitForURL(`${base}/`), page.click("button[type=submit]")]);
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
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
  await shot(page, "admin-members");

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
  await shot(page, "admin-pipeline");
  assert.deepEqual(page.errors, [], "no console errors (CSP holds)");
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
  await shot(page, "lead-preview");
  await confirm(page);
  await shot(page, "lead-promotion");

  await page.click("nav >> text=History");
  await page.waitForURL(/\/promotions$/);
  const history = await page.textContent("table");
  assert.equal((history.match(/dev → prod/g) ?? []).length, 2);
  assert.match(history, /lena/);
  await shot(page, "lead-history");
  assert.deepEqual(page.errors, []);
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
  await shot(page, "viewer-instance");
  await page.goto(`${base}/teams/${state.team}/promotions`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=CSV")]);
  const csv = readFileSync(await download.path(), "utf8");
  assert.match(csv, /^id,created_at,pipeline,from,to,status,requested_by,summary\n/);
  assert.equal((csv.match(/checkout,dev,prod,applied,lena/g) ?? []).length, 2);
  assert.ok(!csv.includes(SECRET));
  assert.deepEqual(page.errors, []);
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
  assert.deepEqual(page.errors, []);
});

test("on a 390 px phone the menu and Log out stay on the screen, for an admin with every link", async () => {
  const page = await loginAs("root");
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ["/", `/teams/${state.team}`, `/teams/${state.team}/instances`,
    `/teams/${state.team}/pipelines/${state.pipeline}`, `/teams/${state.team}/audit`]) {
    await page.goto(`${base}${path}`);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `${path} is ${width}px wide at 390`);
    for (const name of ["Log out", "API tokens"]) {
      const link = page.locator(`header.top >> text=${name}`);
      if ((await link.count()) === 0) continue;
      const box = await link.first().boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${name} on ${path}: ${JSON.stringify(box)}`);
    }
  }
  await shot(page, "phone-pipeline");
  assert.deepEqual(page.errors, []);
});
