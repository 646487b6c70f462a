import { test, expect } from '@playwright/test';
import { openHydrated } from './support';

// Every page, light and dark, desktop and phone: saved as screenshots to look at, and checked
// for what breaks a page on a small screen (the page itself scrolling sideways) and for
// contrast the theme forgot (text the colour of its background).

const sizes = [
  { name: 'desktop', width: 1280, height: 900 },
  { name: 'phone', width: 390, height: 844 },
];

test('every page reads in both themes on a desktop and a phone', async ({ page }, info) => {
  test.setTimeout(240_000);
  // A run to show: the seeded hello workflow, run once.
  const r = await page.request.post('/api/v1/workflows/hello/runs', { data: {} });
  expect(r.status(), await r.text()).toBe(202);
  const run = (await r.json()).run.id;
  await expect.poll(async () => (await (await page.request.get(`/api/v1/runs/${run}`)).json()).status,
    { timeout: 30_000 }).toBe('succeeded');
  const pages = [
    ['workflows', '/workflows'],
    ['workflow', '/workflows/hello'],
    ['builder', '/workflows/hello/edit'],
    ['new-workflow', '/workflows/new'],
    ['runs', '/runs'],
    ['run', `/runs/${run}`],
    ['settings', '/settings'],
    ['not-found', '/no/such/page'],
  ];
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const size of sizes) {
      await page.setViewportSize({ width: size.width, height: size.height });
      for (const [name, path] of pages) {
        await openHydrated(page, path);
        const where = `${name} (${scheme}, ${size.name})`;
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow, `${where} scrolls sideways`).toBeLessThanOrEqual(0);
        // The main heading is there and is not drawn in its background's colour.
        const h1 = page.locator('h1').first();
        await expect(h1, where).toBeVisible();
        const [fg, bg] = await page.evaluate(() => {
          const h = document.querySelector('h1')!;
          return [getComputedStyle(h).color, getComputedStyle(document.body).backgroundColor];
        });
        expect(fg, where).not.toBe(bg);
        // A table is never a bare header row: an empty one says so.
        const bare = await page.evaluate(() =>
          [...document.querySelectorAll('table')].filter(t => t.querySelectorAll('tbody tr').length === 0).length);
        expect(bare, `${where}: tables with only a header`).toBe(0);
        // Labels drawn side by side (the timeline's time axis) do not run into each other.
        const touching = await page.evaluate(() => {
          const boxes = [...document.querySelectorAll('.gantt-tick')].map(t => t.getBoundingClientRect()).filter(b => b.width > 0);
          return boxes.filter((a, i) => boxes.some((b, j) => j > i && a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)).length;
        });
        expect(touching, `${where}: time-axis labels overlap`).toBe(0);
        await page.screenshot({ path: info.outputPath(`${name}-${scheme}-${size.name}.png`), fullPage: true });
      }
    }
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('a second visit takes the site files from the browser cache without asking the server', async ({ page, context }) => {
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const asked: string[] = [];
  const cached = new Set<string>();
  const urls = new Map<string, string>();
  cdp.on('Network.requestWillBeSent', e => { if (e.request.url.includes('/pkg/')) urls.set(e.requestId, e.request.url); });
  cdp.on('Network.requestServedFromCache', e => cached.add(e.requestId));
  cdp.on('Network.responseReceived', e => {
    if (!e.response.url.includes('/pkg/')) return;
    if (!e.response.fromDiskCache && !e.response.fromPrefetchCache && !cached.has(e.requestId)) asked.push(`${e.response.status} ${e.response.url}`);
  });
  // The first visit fetches the bundle (and, in a split build, each page's chunks).
  for (const path of ['/workflows', '/runs']) await openHydrated(page, path);
  expect(asked.length).toBeGreaterThanOrEqual(3);
  expect(asked.every(a => /\.[0-9a-f]{22}\./.test(a)), asked.join('\n')).toBe(true);
  // New page loads (not in-app navigations), as when the tab is opened again.
  asked.length = 0;
  for (const path of ['/workflows', '/runs']) await openHydrated(page, path);
  expect(asked, 'files the server was asked for again').toEqual([]);
  expect([...urls.values()].filter(u => /\.wasm$/.test(u)).length).toBeGreaterThanOrEqual(2);
});
