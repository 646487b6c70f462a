import { test, expect, type Page, type Locator } from '@playwright/test';
import { createWorkflow, openHydrated } from './support';

// Charts as a person reads them: on a phone, by hovering a point, and where points overlap.

let tag = '';
test.beforeEach(() => { tag = Math.random().toString(36).slice(2, 8); });

/** Starts runs of `workflow` with these inputs, all at once, and waits for them to finish. */
async function runAll(page: Page, workflow: string, inputs: object[]) {
  const ids = await Promise.all(inputs.map(async i => {
    const r = await page.request.post(`/api/v1/workflows/${workflow}/runs`, { data: { inputs: i } });
    expect(r.status(), await r.text()).toBe(202);
    return (await r.json()).run.id as string;
  }));
  for (const id of ids) {
    await expect.poll(async () => (await (await page.request.get(`/api/v1/runs/${id}`)).json()).status,
      { timeout: 30_000 }).toBe('succeeded');
  }
  return ids;
}

/** The size the text of a chart's axis is drawn at on screen, in CSS pixels. */
async function drawnTextSize(svg: Locator) {
  return svg.evaluate((el: SVGSVGElement) => {
    const text = el.querySelector('text')!;
    const scale = el.getBoundingClientRect().width / el.viewBox.baseVal.width || el.getBoundingClientRect().width / el.width.baseVal.value;
    return parseFloat(text.getAttribute('font-size')!) * scale;
  });
}

test('charts stay readable on a phone, explain a point on hover, and overlapping points open their runs', async ({ page }, info) => {
  const workflow = `e2e-charts-${tag}`;
  await createWorkflow(page.request, `id: ${workflow}
inputs:
  slow: { type: boolean, default: false }
steps:
- id: quick
  agent: simulate
  with: { latency: 100ms }
- id: slow
  needs: [quick]
  if: inputs.slow
  agent: simulate
  with: { latency: 1500ms }
`);
  // Three runs started together, all ~100 ms: one spot on the scatter. One slow run apart.
  const quick = await runAll(page, workflow, [{}, {}, {}]);
  const [slow] = await runAll(page, workflow, [{ slow: true }]);

  await openHydrated(page, `/workflows/${workflow}`);
  const chart = page.locator('[data-chart="duration"]');
  const wide = chart.locator('.chart-svg.wide svg');
  await expect(wide).toBeVisible();
  await expect(chart.locator('.chart-svg.narrow')).toBeHidden();
  expect(await drawnTextSize(wide)).toBeGreaterThanOrEqual(9.5);

  // Hovering the slow run's point says what it is; it opens that run's trace.
  const lone = chart.locator('.chart-svg.wide a[data-chart-link="run"]');
  await expect(lone).toHaveCount(1);
  await lone.hover();
  const tip = chart.locator('.chart-tip');
  await expect(tip).toBeVisible();
  await expect(tip).toHaveText(new RegExp(`${workflow} · succeeded · \\d[\\d.]* s`));
  const pointBox = await lone.boundingBox();
  const tipBox = await tip.boundingBox();
  expect(tipBox!.y + tipBox!.height, 'above the point').toBeLessThanOrEqual(pointBox!.y + 1);
  expect(Math.abs(tipBox!.x + tipBox!.width / 2 - (pointBox!.x + pointBox!.width / 2))).toBeLessThan(2);
  await page.mouse.move(0, 0);
  await expect(tip).toHaveCount(0);

  // The three quick runs overlap: their spot lists exactly them.
  const spot = chart.locator('.chart-svg.wide a[data-chart-link="runs"]');
  await expect(spot).toHaveCount(1);
  await spot.hover();
  await expect(tip).toHaveText(/^3 runs here \(0 not succeeded\)/);
  await page.screenshot({ path: info.outputPath('chart-tooltip.png') });
  await spot.click();
  await expect(page).toHaveURL(/\/runs\?workflow=.*min_ms=/);
  for (const id of quick) await expect(page.locator(`tr[data-run="${id}"]`)).toBeVisible();
  await expect(page.locator(`tr[data-run="${slow}"]`)).toHaveCount(0);

  // On a phone the chart drawn for that width is shown: its text is as large as on a desktop.
  await page.setViewportSize({ width: 390, height: 844 });
  await openHydrated(page, `/workflows/${workflow}`);
  const narrow = chart.locator('.chart-svg.narrow svg');
  await expect(narrow).toBeVisible();
  await expect(wide).toBeHidden();
  expect(await drawnTextSize(narrow)).toBeGreaterThanOrEqual(10.5);
  // Its labels do not run into each other.
  const overlaps = await narrow.evaluate((el: SVGSVGElement) => {
    const boxes = [...el.querySelectorAll('text')].map(t => t.getBoundingClientRect()).filter(b => b.width > 0);
    let n = 0;
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const [a, b] = [boxes[i], boxes[j]];
      if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) n++;
    }
    return n;
  });
  expect(overlaps).toBe(0);
  await page.screenshot({ path: info.outputPath('charts-phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
});
