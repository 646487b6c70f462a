// Screenshots of pages for a person to look at: node screenshot.mjs BASE_URL OUT_DIR path...
// Each path is taken in light and dark, at desktop and phone width.
import { chromium } from 'playwright-core';

const [base, out, ...paths] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
for (const scheme of ['light', 'dark']) {
  for (const [label, viewport] of [['desktop', { width: 1280, height: 900 }], ['phone', { width: 390, height: 844 }]]) {
    const page = await browser.newPage({ colorScheme: scheme, viewport });
    for (const p of paths) {
      await page.goto(base + p);
      await page.waitForSelector('body[data-hydrated]');
      const name = p.replace(/[^a-z0-9]+/gi, '_').replace(/^_|_$/g, '') || 'root';
      await page.screenshot({ path: `${out}/${name}-${scheme}-${label}.png`, fullPage: true });
    }
    await page.close();
  }
}
await browser.close();
