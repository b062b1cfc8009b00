// Drives Debian's Chromium (headless) through the OAuth login and consent page.
// Input: one JSON argument (see tests/oauth/test_login_page_browser.py). Output: one JSON line
// of what the browser saw; the Python test judges it. Screenshots go to `artifacts`.
import { chromium } from "playwright-core";

const input = JSON.parse(process.argv[2]);
const seen = {};

const browser = await chromium.launch({
  executablePath: input.chromium,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});

// The client's redirect URI is a small server of the Python test's, standing in for the app.
async function newPage(viewport) {
  const context = await browser.newContext({ viewport, javaScriptEnabled: input.javascript });
  const page = await context.newPage();
  return { context, page };
}

try {
  // A phone-sized window: the page must fit without sideways scrolling.
  {
    const { context, page } = await newPage({ width: 390, height: 844 });
    const response = await page.goto(input.urls.wrongPassword);
    seen.status = response.status();
    seen.title = await page.title();
    seen.heading = await page.locator("h1").innerText();
    seen.scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    seen.stylesheetApplied = await page.evaluate(
      () => getComputedStyle(document.querySelector("button.primary")).backgroundColor,
    );
    await page.screenshot({ path: `${input.artifacts}/login-page-phone.png`, fullPage: true });
    await page.fill("#email", input.email);
    await page.fill("#password", "not the password");
    await page.click("button[value=allow]");
    await page.waitForLoadState();
    seen.wrongPasswordError = await page.locator(".error").innerText();
    seen.wrongPasswordUrl = page.url();
    await page.screenshot({ path: `${input.artifacts}/login-page-wrong-password.png`, fullPage: true });
    // An email nobody has: the same words.
    await page.fill("#email", input.unknownEmail);
    await page.fill("#password", "not the password");
    await page.click("button[value=allow]");
    await page.waitForLoadState();
    seen.unknownEmailError = await page.locator(".error").innerText();
    await context.close();
  }
  {
    const { context, page } = await newPage({ width: 1280, height: 800 });
    await page.goto(input.urls.allow);
    await page.fill("#email", input.email);
    await page.fill("#password", input.password);
    await Promise.all([page.waitForURL(`${input.redirectPrefix}**`), page.click("button[value=allow]")]);
    seen.allowUrl = page.url();
    await context.close();
  }
  {
    const { context, page } = await newPage({ width: 1280, height: 800 });
    await page.goto(input.urls.deny);
    await page.screenshot({ path: `${input.artifacts}/login-page-desktop.png`, fullPage: true });
    await Promise.all([page.waitForURL(`${input.redirectPrefix}**`), page.click("button[value=deny]")]);
    seen.denyUrl = page.url();
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
