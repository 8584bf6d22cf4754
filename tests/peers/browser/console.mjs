// A tour of the console and the customer setup page in headless Chromium (Debian's, through
// playwright-core), checking what each page shows and taking a screenshot of each.
//
// Usage: node console.mjs --base URL --key ADMIN_KEY --org SLUG --setup SETUP_URL
//        --issuer OIDC_ISSUER --shots DIR [--attack URL] [--chromium /usr/bin/chromium]
// --attack: a page on another site that posts an admin key to the console's sign-in (login
// CSRF); the browser must not be signed in by it.
// Prints one JSON line on stdout: {"scim_token": "...", "checks": [...]}. Exits non-zero on
// the first failed check.
import { chromium } from "playwright-core";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const base = arg("base");
const key = arg("key");
const org = arg("org");
const setup = arg("setup");
const issuer = arg("issuer");
const shots = arg("shots");
const attack = arg("attack");
const executablePath = arg("chromium", "/usr/bin/chromium");
if (!base || !key || !org || !setup || !issuer || !shots) {
  console.error("usage: console.mjs --base URL --key KEY --org SLUG --setup URL --issuer URL --shots DIR");
  process.exit(2);
}

const checks = [];
function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  checks.push(what);
}
async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}
async function text(page, selector) {
  return (await page.locator(selector).first().textContent()) ?? "";
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
let scimToken = null;
try {
  // ---- The console, signed in with an admin key.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${base}/console`);
  check(page.url().endsWith("/console/login"), "unsigned visitors are sent to the sign-in page");
  await page.fill("#key", "rak_not-a-key");
  await page.click("button[type=submit]");
  check((await page.content()).includes("unknown or revoked"), "a wrong key is refused");
  await page.fill("#key", key);
  await page.click("button[type=submit]");
  await page.waitForURL(`${base}/console`);
  check((await text(page, "h1")) === "Organizations", "signed in: the organizations page");
  check((await page.content()).includes(`/console/orgs/${org}`), "the organization is listed");
  await shot(page, "01-organizations");

  await page.click(`a[href="/console/orgs/${org}"]`);
  check((await page.locator(".card").count()) >= 5, "the organization page shows its counts");
  await shot(page, "02-organization");

  // Users: search, then filter by state.
  await page.goto(`${base}/console/orgs/${org}/users`);
  await page.fill("input[name=q]", "ADA");
  await page.click("form.filters button");
  let rows = await page.locator("tbody tr").allTextContents();
  check(rows.length === 1 && rows[0].includes("ada@"), `search finds ada only (${rows})`);
  await page.goto(`${base}/console/orgs/${org}/users?state=inactive`);
  rows = await page.locator("tbody tr").allTextContents();
  check(rows.length === 1 && rows[0].includes("bob@"), `state=inactive lists bob only (${rows})`);
  await page.goto(`${base}/console/orgs/${org}/users?provenance=jit`);
  check((await page.locator("tbody tr").count()) === 0, "no JIT users");
  await page.goto(`${base}/console/orgs/${org}/users`);
  await shot(page, "03-users");

  // A user's timeline; deactivating from the console.
  await page.click("a:text('ada@acme.test')");
  check((await page.content()).includes("user.created"), "the timeline shows user.created");
  await page.click("button.danger");
  await page.waitForLoadState("load");
  check((await page.content()).includes("badge bad\">inactive"), "ada is inactive after the button");
  check((await page.content()).includes("user.deactivated"), "the timeline shows user.deactivated");
  await shot(page, "04-user-timeline");

  await page.goto(`${base}/console/orgs/${org}/groups`);
  check((await page.content()).includes("Engineering"), "groups are listed");
  await page.click("a:text('Engineering')");
  check((await page.locator("tbody tr").count()) === 2, "the group shows its two members");
  await shot(page, "05-group");

  await page.goto(`${base}/console/orgs/${org}/connections`);
  await shot(page, "06-connections");

  // Recent SCIM traffic arrives every few seconds.
  let traffic = "";
  for (let i = 0; i < 30; i++) {
    await page.goto(`${base}/console/orgs/${org}/directories`);
    traffic = await page.content();
    if (traffic.includes("Okta SCIM")) break;
    await page.waitForTimeout(500);
  }
  check(traffic.includes("Okta SCIM") && traffic.includes("/scim/v2/Users"), "recent SCIM requests with their client");
  check(!traffic.includes("filter="), "no query string is shown");
  await shot(page, "07-directories");

  // Webhooks: deliveries and a resend.
  await page.goto(`${base}/console/webhooks`);
  await page.click("tbody a");
  check((await page.locator("tbody tr").count()) >= 1, "the endpoint's deliveries are listed");
  await page.locator("tbody tr").first().locator("button").click();
  await page.waitForLoadState("load");
  const notice = await text(page, ".notice");
  check(/resent: delivered/.test(notice), `resend delivered (${notice})`);
  await shot(page, "08-webhook-deliveries");
  await page.locator("tbody tr").first().locator("a").first().click();
  const attempts = await page.locator("tbody tr").allTextContents();
  check(attempts.length >= 2 && attempts.every((r) => r.includes("200")),
    `the delivery's attempts, the resend among them (${attempts})`);
  check((await page.content()).includes("\"type\""), "the event itself is shown");
  await shot(page, "08b-delivery-attempts");

  await page.goto(`${base}/console/orgs/${org}/drift`);
  check((await text(page, "h2")).includes("must be 0") && (await text(page, "h2 .badge")) === "0",
    "the drift report shows no deactivated user with live access");
  await shot(page, "09-drift");

  await page.goto(`${base}/console/orgs/${org}/deprovisioning`);
  check((await page.locator("svg.chart rect.revoke").count()) >= 1, "the latency chart has a bar");
  await shot(page, "10-deprovisioning");

  await page.click("header button");
  await page.waitForURL(`${base}/console/login`);
  await page.goto(`${base}/console`);
  check(page.url().endsWith("/console/login"), "signed out");

  if (attack) {
    // Another site's page posts a key to the sign-in form: refused, and no session.
    await page.goto(attack);
    await page.waitForURL((u) => u.href.startsWith(base));
    check(page.url() === `${base}/console/login` && (await page.content()).includes("Sign-in refused"),
      `a sign-in posted by another site is refused (landed on ${page.url()})`);
    await page.goto(`${base}/console`);
    check(page.url().endsWith("/console/login"), "another site's sign-in opened no session");
  }

  // ---- The customer's setup page.
  const it = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const sp = await it.newPage();
  await sp.goto(setup);
  check(sp.url() === `${base}/setup`, "the link opens the setup page and leaves the URL");
  check((await sp.content()).includes("/acs"), "the ACS URL is shown");
  await sp.click("a:text('Microsoft Entra ID')");
  check((await sp.content()).includes("Tenant URL"), "Entra ID's steps are shown");
  await shot(sp, "11-setup");
  await sp.click("summary");
  await sp.fill("input[name=issuer]", issuer);
  await sp.fill("input[name=client_id]", "roster");
  await sp.fill("input[name=client_secret]", "roster-secret");
  await sp.click("form[action='/setup/oidc'] button");
  await sp.waitForLoadState("load");
  check((await sp.content()).includes("Connected:"), "the OIDC connection is saved");
  await sp.click("form[action='/setup/scim-token'] button");
  await sp.waitForLoadState("load");
  scimToken = (await sp.locator("code").nth(1).textContent()).trim();
  check(scimToken.startsWith("rst_"), "a SCIM token is minted");
  await shot(sp, "12-setup-token");
  await sp.goto(`${base}/setup`);
  await sp.waitForFunction(() => /^[0-9]+$/.test(document.querySelector("[data-k=users]").textContent));
  check(/^[0-9]+$/.test(await text(sp, "[data-k=users]")), "live status shows the user count");
  // A setup link's connection reaches public addresses only: this IdP runs on loopback, so
  // the test login is refused before any request to it, and the page names nothing of it.
  await sp.click("form[action='/setup/test'] button");
  await sp.waitForURL(`${base}/**`, { timeout: 30000 });
  await sp.waitForSelector("text=could not be reached", { timeout: 30000 });
  check(!(await sp.content()).includes(new URL(issuer).host),
    "the refused test login shows nothing of the private address");
  await shot(sp, "13-setup-test-login");

  const other = await browser.newContext();
  const op = await other.newPage();
  const resp = await op.goto(setup);
  check(resp.status() === 410, "a spent link is refused");
  console.log(JSON.stringify({ scim_token: scimToken, checks }));
} finally {
  await browser.close();
}
