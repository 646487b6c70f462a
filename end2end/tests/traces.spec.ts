import { test, expect, type Page } from '@playwright/test';
import { createWorkflow, openHydrated } from './support';

// Trace links: a step's "Trace" link and a chart point open Grafana Explore on the run's
// trace (the server is started with FLOWSCOPE_GRAFANA_URL, see playwright.config.ts).

let tag = '';
test.beforeEach(() => { tag = Math.random().toString(36).slice(2, 8); });

/** The Explore pane a Grafana URL encodes. */
function paneOf(href: string) {
  const url = new URL(href);
  expect(url.origin + url.pathname).toBe('http://grafana.test:3000/explore');
  expect(url.searchParams.get('schemaVersion')).toBe('1');
  const panes = JSON.parse(url.searchParams.get('panes') ?? '{}');
  return Object.values(panes)[0] as any;
}

/** Clicks a link without leaving for the (unreachable) Grafana; returns where it went. */
async function clickAndCatch(page: Page, link: ReturnType<Page['locator']>): Promise<string> {
  let target = '';
  await page.route('http://grafana.test:3000/**', async (route) => {
    target = route.request().url();
    await route.fulfill({ status: 200, contentType: 'text/html', body: '<title>Grafana</title>' });
  });
  await link.click();
  await expect.poll(() => target).not.toBe('');
  await page.unroute('http://grafana.test:3000/**');
  return target;
}

test('a step trace link and a chart point open the run trace in Grafana', async ({ page, request }, info) => {
  const workflow = `e2e-traced-${tag}`;
  await createWorkflow(request, `id: ${workflow}
name: Traced
steps:
- id: first
  agent: simulate
  with: { latency: 20ms }
- id: second
  agent: simulate
  needs: [first]
  with: { latency: 30ms }
`);
  const r = await request.post(`/api/v1/workflows/${workflow}/runs`, { data: {} });
  expect(r.status()).toBe(202);
  const id = (await r.json()).run.id;
  let run: any;
  await expect.poll(async () => {
    run = await (await request.get(`/api/v1/runs/${id}`)).json();
    return run.status;
  }).toBe('succeeded');
  expect(run.trace_id).toMatch(/^[0-9a-f]{32}$/);
  const second = run.attempts.find((a: any) => a.step_id === 'second');
  expect(second.span_id).toMatch(/^[0-9a-f]{16}$/);

  // The step's link selects its attempt's span in the run's trace.
  await openHydrated(page, `/runs/${id}`);
  const stepLink = page.locator('#step-second [data-trace-link="step"]');
  const stepPane = paneOf(await stepLink.getAttribute('href') ?? '');
  expect(stepPane.queries[0].query).toBe(run.trace_id);
  expect(stepPane.queries[0].queryType).toBe('traceql');
  expect(stepPane.queries[0].datasource).toEqual({ type: 'tempo', uid: 'tempo-e2e' });
  expect(stepPane.panelsState.trace.spanId).toBe(second.span_id);
  expect(Number(stepPane.range.from)).toBeLessThanOrEqual(run.created_at);
  expect(Number(stepPane.range.to)).toBeGreaterThanOrEqual(run.finished_at);
  const went = await clickAndCatch(page, stepLink);
  expect(paneOf(went).panelsState.trace.spanId).toBe(second.span_id);

  // On the workflow page, the run's point on the duration chart opens the same trace.
  await openHydrated(page, `/workflows/${workflow}`);
  const chart = page.locator('[data-chart="duration"]');
  // At this width the chart drawn 600 px wide is the one shown (the narrow one is for phones).
  await expect(chart.locator('.chart-svg.wide svg')).toBeVisible();
  await expect(chart.locator('.chart-svg.narrow svg')).toBeHidden();
  await page.screenshot({ path: info.outputPath('workflow-charts.png'), fullPage: true });
  const point = chart.locator('.chart-svg.wide a[data-chart-link="run"]');
  await expect(point).toHaveCount(1);
  const pointPane = paneOf(await clickAndCatch(page, point));
  expect(pointPane.queries[0].query).toBe(run.trace_id);

  // A histogram bar opens the runs in its bucket, this run among them.
  await openHydrated(page, `/workflows/${workflow}`);
  await page.locator('[data-chart="histogram"] .chart-svg.wide a[data-chart-link="bucket"]').first().click();
  await expect(page).toHaveURL(/\/runs\?workflow=.*min_ms=/);
  await expect(page.locator(`tr[data-run="${id}"]`)).toBeVisible();
  await expect(page.locator('.filter-chip')).toContainText('run time');
});
