// Loads h2-page.html (served through Gatehouse over HTTP/2 with TLS) in
// headless Chromium, waits for the page to finish its cases, and prints one
// JSON line: the page's results, the Resource Timing entries (nextHopProtocol)
// and every response as Chromium's network layer saw it (protocol and
// connection id, from the DevTools protocol). Driven by
// test/integration/h2client_test.go, which judges the output:
//
//   PAGE_URL=https://127.0.0.1:8443/page CHROMIUM=/usr/bin/chromium node h2-page.mjs
//
// The certificate is the test CA's, which Chromium does not know: the
// context ignores certificate errors. Exits 1 when the page could not run
// (the cases' own failures are in the output, for the test to report).
import { chromium } from 'playwright-core';

const url = process.env.PAGE_URL;
const origin = new URL(url).origin;
const problems = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let out = {};
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console error: ' + m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e));
  page.on('request', (r) => { if (new URL(r.url()).origin !== origin) problems.push('external request: ' + r.url()); });
  page.on('requestfailed', (r) => {
    // The page closes its event stream itself once it has read enough.
    if (!new URL(r.url()).pathname.startsWith('/events')) problems.push(`request failed: ${r.url()}: ${r.failure()?.errorText}`);
  });
  const responses = [];
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', (e) => responses.push({
    url: e.response.url, status: e.response.status, protocol: e.response.protocol, connectionId: e.response.connectionId,
  }));

  await page.goto(url, { waitUntil: 'load', timeout: 15000 });
  await page.waitForFunction(() => window.__h2result, null, { timeout: 20000, polling: 50 });
  const result = await page.evaluate(() => window.__h2result);
  const timing = await page.evaluate(() => ({
    navigation: performance.getEntriesByType('navigation').map((e) => ({ name: e.name, nextHopProtocol: e.nextHopProtocol })),
    resources: performance.getEntriesByType('resource').map((e) => ({ name: e.name, nextHopProtocol: e.nextHopProtocol, initiatorType: e.initiatorType })),
  }));
  out = { result, timing, responses };
} catch (e) {
  problems.push(String(e));
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ...out, problems }));
process.exit(problems.length ? 1 : 0);
