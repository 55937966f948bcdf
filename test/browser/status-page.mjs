// Loads Gatehouse's admin status page in headless Chromium and checks that
// it renders live data with no console errors and no request leaving the
// admin listener. Driven by test/integration/browser_test.go:
//
//   STATUS_URL=http://127.0.0.1:9901/ SCREENSHOT=/tmp/status.png node status-page.mjs
//
// Prints one JSON line with what it saw; exits 1 on any failure.
import { chromium } from 'playwright-core';

const url = process.env.STATUS_URL;
const shot = process.env.SCREENSHOT;
const origin = new URL(url).origin;
const problems = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  // A phone-sized viewport: the page must be readable there.
  const page = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console error: ' + m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e));
  page.on('request', (r) => { if (new URL(r.url()).origin !== origin) problems.push('external request: ' + r.url()); });
  page.on('requestfailed', (r) => problems.push('request failed: ' + r.url()));

  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => document.querySelector('#ready')?.textContent === 'ready', null, { timeout: 15000 });

  const appTotal = () => page.evaluate(() => {
    for (const tr of document.querySelectorAll('#routes tr')) {
      if (tr.querySelector('td div')?.textContent === 'app') return Number(tr.children[3].textContent);
    }
    return -1;
  });
  await page.waitForFunction(() => [...document.querySelectorAll('#routes tr')].some((tr) => tr.querySelector('td div')?.textContent === 'app'), null, { timeout: 15000 });
  const first = await appTotal();
  // The page refreshes itself: without a reload, the count must grow.
  await page.waitForFunction((n) => {
    for (const tr of document.querySelectorAll('#routes tr')) {
      if (tr.querySelector('td div')?.textContent === 'app') return Number(tr.children[3].textContent) > n;
    }
    return false;
  }, first, { timeout: 15000 });
  const second = await appTotal();
  const upstreams = await page.$$eval('#upstreams tr', (rows) => rows.map((r) => r.textContent));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  if (overflow) problems.push('the page is wider than a phone screen');
  if (upstreams.length === 0) problems.push('no upstreams listed');
  let sawDown = null;
  if (process.env.WAIT_DOWN) {
    // The driver stops that target once we say so; the page must show it
    // going down by itself.
    const addr = process.env.WAIT_DOWN;
    const state = () => page.evaluate((a) => {
      for (const tr of document.querySelectorAll('#upstreams tr')) {
        if (tr.children[1]?.textContent === a) return tr.children[2].textContent;
      }
      return null;
    }, addr);
    await page.waitForFunction((a) => [...document.querySelectorAll('#upstreams tr')].some((tr) => tr.children[1]?.textContent === a && tr.children[2].textContent === 'up'), addr, { timeout: 15000 });
    console.log('stop ' + addr);
    await new Promise((resolve) => process.stdin.once('data', resolve));
    await page.waitForFunction((a) => [...document.querySelectorAll('#upstreams tr')].some((tr) => tr.children[1]?.textContent === a && tr.children[2].textContent === 'down'), addr, { timeout: 15000 });
    sawDown = await state();
  }
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ first, second, upstreams, sawDown, problems }));
} catch (e) {
  problems.push(String(e));
  console.log(JSON.stringify({ problems }));
} finally {
  await browser.close();
}
process.stdin.destroy();
process.exit(problems.length ? 1 : 0);
