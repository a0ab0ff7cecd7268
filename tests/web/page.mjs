// The page of `gmu serve` in a real browser (Debian's chromium, driven by playwright-core):
// types a plot, drops a poster, presses Predict, and prints what the bars show as JSON
// (tests/serve.rs compares it with `gmu predict`). Usage:
//   node page.mjs URL PLOT POSTER.jpeg SCREENSHOT.png
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [url, plot, poster, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`));
  // Everything comes from gmu: no request leaves the server (a blob: URL is the dropped poster itself).
  page.on("request", (r) => { if (!r.url().startsWith(url) && !r.url().startsWith("blob:")) errors.push(`outside request: ${r.url()}`); });
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  await page.fill('textarea[data-view="text"]', plot);
  // A real drop event carrying the poster's bytes as a file.
  const bytes = [...readFileSync(poster)];
  const transfer = await page.evaluateHandle((data) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(data)], "poster.jpeg", { type: "image/jpeg" }));
    return dt;
  }, bytes);
  await page.dispatchEvent('.drop[data-view="visual"]', "drop", { dataTransfer: transfer });
  await page.waitForSelector('.drop[data-view="visual"] img');
  await page.click("#submit");
  await page.waitForSelector('[data-testid="prob"]', { timeout: 30000 });
  const shown = await page.evaluate(() => {
    const value = (el) => (el.dataset.value === "" ? null : Number(el.dataset.value));
    const out = { predicted: document.querySelector('[data-testid="predicted"]').textContent, probs: {}, views: {} };
    for (const el of document.querySelectorAll('[data-testid="prob"]')) out.probs[el.dataset.label] = value(el);
    for (const what of ["gate", "share", "suspect", "importance", "conflict"]) {
      for (const el of document.querySelectorAll(`[data-testid="${what}"]`)) {
        out.views[el.dataset.view] = out.views[el.dataset.view] || {};
        out.views[el.dataset.view][what] = value(el);
        out.views[el.dataset.view][`${what}_width`] = el.querySelector(".fill").style.width;
      }
    }
    for (const el of document.querySelectorAll('[data-testid="view"]')) {
      out.views[el.dataset.view] = out.views[el.dataset.view] || {};
      out.views[el.dataset.view].present = el.dataset.present === "true";
    }
    out.error = document.getElementById("error").textContent;
    return out;
  });
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  shown.page_errors = errors;
  console.log(JSON.stringify(shown));
} finally {
  await browser.close();
}
