// Logs in through Gatehouse's browser login in headless Chromium, as a
// person would: opens a protected page, is sent to the issuer's sign-in
// page, types a user name, submits, and must land back on the page,
// rendered by the app behind Gatehouse with its scripts and styles. Then
// logs out with a form post and confirms at the issuer, and must be asked
// to sign in again. Driven by test/e2e (TestBrowserLogin):
//
//   GATEHOUSE_URL=http://127.0.0.1:8080 ISSUER_URL=http://127.0.0.1:9000 \
//   START_PATH=/admin/ LOGIN_USER=alice SCREENSHOT=/tmp/login.png node login.mjs
//
// Prints one JSON line with what it saw; exits 1 on any failure.
import { chromium } from 'playwright-core';

const base = process.env.GATEHOUSE_URL;
const issuer = process.env.ISSUER_URL;
const startPath = process.env.START_PATH || '/admin/';
const user = process.env.LOGIN_USER || 'alice';
const shot = process.env.SCREENSHOT;
const problems = [];
const result = { problems };
const step = (name) => { result.step = name; };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  // Browsers ask for /favicon.ico by themselves; nothing serves it here.
  const favicon = (u) => (u ? new URL(u).pathname.endsWith('/favicon.ico') : false);
  page.on('console', (m) => {
    if (m.type() === 'error' && !favicon(m.location()?.url)) problems.push(`console error: ${m.text()} (${m.location()?.url})`);
  });
  page.on('pageerror', (e) => problems.push('page error: ' + e));
  page.on('request', (r) => {
    const o = new URL(r.url()).origin;
    if (o !== base && o !== issuer) problems.push('request to another origin: ' + r.url());
  });
  page.on('requestfailed', (r) => problems.push('request failed: ' + r.url() + ' ' + r.failure()?.errorText));
  page.on('response', (r) => {
    if (r.status() >= 400 && !favicon(r.url())) {
      problems.push(`${r.request().method()} ${r.url()} → ${r.status()}`);
    }
  });
  const sessionCookie = async () => (await context.cookies(base)).find((c) => c.name === 'gatehouse_session');

  step('open the protected page');
  await page.goto(base + startPath, { waitUntil: 'load' });
  await page.waitForSelector('input[name=login]', { timeout: 15000 });
  result.loginPage = page.url();

  step('sign in at the issuer');
  await page.fill('input[name=login]', user);
  await Promise.all([
    page.waitForURL((u) => u.origin === base && u.pathname.startsWith('/admin'), { timeout: 15000, waitUntil: 'load' }),
    page.click('button[type=submit]'),
  ]);
  result.landed = page.url();

  step('check the app page');
  await page.waitForSelector('h1', { timeout: 15000 });
  result.title = await page.title();
  result.h1 = (await page.textContent('h1'))?.trim();
  result.host = (await page.textContent('#host'))?.trim();
  // The stylesheet (a subresource, authenticated by the session cookie)
  // applied: globals.css sets body { margin: 2rem }.
  result.bodyMargin = await page.evaluate(() => getComputedStyle(document.body).marginTop);
  const sc = await sessionCookie();
  result.sessionCookie = sc
    ? { httpOnly: sc.httpOnly, secure: sc.secure, sameSite: sc.sameSite, path: sc.path, length: sc.value.length }
    : null;
  result.scriptSeesSession = await page.evaluate(() => document.cookie.includes('gatehouse_session'));
  // A script of the page calls the app's API with the session.
  result.apiStatus = await page.evaluate(async () => {
    const r = await fetch('/admin/api/hello');
    await r.text(); // read to the end: a body still loading is aborted by the next navigation
    return r.status;
  });
  if (shot) await page.screenshot({ path: shot, fullPage: true });

  step('log out');
  // The logout path opened like a typed URL shows Gatehouse's logout page
  // (a GET never logs out); its button posts the form, which its CSP lets
  // through to the issuer's end_session_endpoint.
  await page.goto(base + '/_gatehouse/logout');
  result.logoutPageText = (await page.textContent('body'))?.trim();
  await Promise.all([
    page.waitForURL((u) => u.origin === issuer && u.pathname.startsWith('/session/end'), { timeout: 15000 }),
    page.click('form[action="/_gatehouse/logout"] button[name=logout]'),
  ]);
  result.logoutPage = page.url();
  result.sessionAfterLogout = !!(await sessionCookie());

  step('confirm at the issuer');
  // The issuer ends its own session and sends the browser back to the
  // post_logout_redirect_uri, a protected page: sign in again.
  await Promise.all([
    page.waitForURL((u) => u.origin === issuer && u.pathname.startsWith('/interaction/'), { timeout: 15000 }),
    page.click('button[name=logout]'),
  ]);
  await page.waitForSelector('input[name=login]', { timeout: 15000 });
  result.afterLogout = page.url();
  result.apiAfterLogout = (await context.request.get(base + '/admin/api/hello', { failOnStatusCode: false, maxRedirects: 0 })).status();
  step('done');
} catch (e) {
  problems.push(`${result.step}: ${e}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(problems.length ? 1 : 0);
