// Drives headless Chromium (Debian's, through playwright-core) from an app's authorization
// URL through every real redirect until the browser is sent to the app's redirect URI.
//
// Usage: node login.mjs --url AUTHORIZE_URL --until REDIRECT_URI_PREFIX [--screenshot FILE]
//        [--chromium /usr/bin/chromium]
// Prints one JSON line on stdout: {"final_url": "...", "visited": ["...", ...]}.
// The app's redirect URI must answer (any page). Exits non-zero on any failure.
import { chromium } from "playwright-core";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const url = arg("url");
const until = arg("until");
const screenshot = arg("screenshot");
const executablePath = arg("chromium", "/usr/bin/chromium");
if (!url || !until) {
  console.error("usage: login.mjs --url URL --until PREFIX [--screenshot FILE]");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  const visited = [];
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) visited.push(frame.url());
  });
  page.on("request", (req) => {
    if (req.isNavigationRequest()) visited.push(req.url());
  });
  await page.goto(url, { waitUntil: "load", timeout: 30000 });
  await page.waitForURL(`${until}**`, { timeout: 30000 });
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ final_url: page.url(), visited: [...new Set(visited)] }));
} finally {
  await browser.close();
}
