import { test, expect, type Page, type APIRequestContext } from '@playwright/test';
import { createWorkflow, openHydrated } from './support';

// The run page and the monitor, driven through a real server and Chromium. Workflows are
// created through the REST API; each test uses its own ids, so tests do not see each other.

async function trigger(request: APIRequestContext, workflow: string): Promise<string> {
  const r = await request.post(`/api/v1/workflows/${workflow}/runs`, { data: {} });
  expect(r.status(), await r.text()).toBe(202);
  return (await r.json()).run.id;
}

// Unique per test, so the suite can repeat against one server (--repeat-each).
let tag = '';
test.beforeEach(() => { tag = Math.random().toString(36).slice(2, 8); });

const node = (page: Page, step: string) => page.locator(`svg.dag [data-step="${step}"]`);

// What a person sees: the box has its drawn size and lies inside the page, not 0×0 (an SVG
// child created in the HTML namespace has the attributes and no size).
async function expectDrawn(page: Page, step: string) {
  const box = await node(page, step).locator('rect').boundingBox();
  expect(box, `${step} has a box`).not.toBeNull();
  expect(box!.width).toBeGreaterThan(100);
  expect(box!.height).toBeGreaterThan(30);
  const page_width = page.viewportSize()!.width;
  expect(box!.x).toBeGreaterThanOrEqual(0);
  expect(box!.x + box!.width).toBeLessThanOrEqual(page_width + 1);
}

test('a run page draws pending steps and turns each one green live', async ({ page, request }, info) => {
  await createWorkflow(request, `id: e2e-slow-${tag}
name: Slow chain
steps:
- id: first
  agent: simulate
  with: { latency: 800ms }
- id: second
  agent: simulate
  needs: [first]
  with: { latency: 800ms }
- id: third
  agent: transform
  needs: [second]
  with: { jq: '{done: true}' }
`);
  const id = await trigger(request, `e2e-slow-${tag}`);
  await openHydrated(page, `/runs/${id}`);
  // Called what people call it: the workflow's name and the run's number.
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Slow chain #1');
  await expect(page).toHaveTitle(/Slow chain #1/);
  // The whole DAG is there before its steps run; the last one is still pending.
  await expect(node(page, 'third')).toHaveAttribute('data-status', 'pending');
  // No reload from here on: the changes arrive over the event stream.
  await expect(node(page, 'first')).toHaveAttribute('data-status', 'succeeded');
  await expect(node(page, 'second')).toHaveAttribute('data-status', /running|succeeded/);
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'succeeded');
  for (const step of ['first', 'second', 'third']) {
    await expect(node(page, step)).toHaveAttribute('data-status', 'succeeded');
    await expectDrawn(page, step);
  }
  // A node of the graph opens its step: the panel of a step that succeeded starts closed.
  await expect(page.locator('#step-first')).not.toHaveAttribute('open');
  await node(page, 'first').click();
  await expect(page.locator('#step-first')).toHaveAttribute('open', '');
  await expect(page.locator('#step-first')).toBeInViewport();
  // Every attempt is on the timeline, and the output is shown.
  await expect(page.locator('.gantt-row[data-attempt]')).toHaveCount(3);
  await page.locator('#step-third > summary').click();
  await expect(page.locator('#step-third')).toContainText('"done": true');
  await page.screenshot({ path: info.outputPath('run.png'), fullPage: true });
});

test('a failed run is retried from its failed step and the new run succeeds', async ({ page, request }, info) => {
  // The check fails while workflow e2e-target-${tag} does not exist, and passes once it does.
  await createWorkflow(request, `id: e2e-flaky-${tag}
name: Depends on a target
steps:
- id: prepare
  agent: simulate
  with: { output: { ready: true } }
- id: check
  agent: http
  needs: [prepare]
  with: { url: '${test.info().project.use.baseURL}/api/v1/workflows/e2e-target-${tag}' }
`);
  const id = await trigger(request, `e2e-flaky-${tag}`);
  await openHydrated(page, `/runs/${id}`);
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'failed');
  await expect(page.locator('#step-check')).toContainText('answered 404');
  await page.screenshot({ path: info.outputPath('failed-run.png'), fullPage: true });

  await createWorkflow(request, `id: e2e-target-${tag}
name: Target
steps:
- id: a
  agent: simulate
`);
  await page.getByRole('button', { name: 'Retry from failed step' }).click();
  await page.getByRole('button', { name: 'Yes' }).click();
  await expect(page).not.toHaveURL(new RegExp(id));
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'succeeded');
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Depends on a target #2');
  // The new run reused the step that had succeeded, and links back to the one it retries.
  await expect(page.getByRole('link', { name: id.slice(-12) })).toBeVisible();
  await expect(page.locator('#step-prepare')).toContainText('0 attempts');
  await expect(node(page, 'check')).toHaveAttribute('data-status', 'succeeded');
  // This page was built in the browser (in-app navigation), not hydrated: still drawn.
  await expectDrawn(page, 'prepare');
  await expectDrawn(page, 'check');
});

test('a succeeded run runs again with changed inputs on the latest version', async ({ page, request }, info) => {
  const greet = (word: string) => `id: e2e-greet-${tag}
name: Greeter
inputs:
  who: { type: string, default: world }
steps:
- id: say
  agent: transform
  with: { jq: '"${word} " + .inputs.who' }
`;
  await createWorkflow(request, greet('hello'));
  const id = await trigger(request, `e2e-greet-${tag}`);
  await openHydrated(page, `/runs/${id}`);
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'succeeded');
  // A second version; the run page offers the run again, with its inputs to change.
  const updated = await request.put(`/api/v1/workflows/e2e-greet-${tag}`, {
    data: greet('hi'), headers: { 'content-type': 'application/yaml' },
  });
  expect(updated.status(), await updated.text()).toBe(200);
  await page.getByRole('button', { name: 'Change inputs…' }).click();
  const form = page.getByRole('form', { name: 'Run again with changed inputs' });
  await expect(form.getByLabel('Inputs (JSON)')).toHaveValue(/"who": "world"/);
  // A wrong type is refused where it was typed, naming the input; nothing starts.
  await form.getByLabel('Inputs (JSON)').fill('{"who": 5}');
  await form.getByRole('button', { name: 'Start run' }).click();
  await expect(page.locator('.actions .error-note')).toContainText('Could not start the new run');
  await expect(page.locator('.actions .error-note')).toContainText('who');
  await expect(page).toHaveURL(new RegExp(id));
  await page.screenshot({ path: info.outputPath('changed-inputs.png') });
  await form.getByLabel('Inputs (JSON)').fill('{"who": "ada"}');
  await form.getByLabel("Run the workflow's latest version").check();
  await form.getByRole('button', { name: 'Start run' }).click();
  await expect(page).not.toHaveURL(new RegExp(id));
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'succeeded');
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Greeter #2');
  await expect(page.locator('.facts')).toContainText('v2');
  await page.locator('#step-say > summary').click();
  await expect(page.locator('#step-say')).toContainText('hi ada');
  // And plainly again, same inputs and version as this run.
  await page.getByRole('button', { name: 'Run again' }).click();
  await expect(page.getByRole('group', { name: 'Confirm' })).toContainText('same inputs and version');
});

test('a long run is cancelled from its page after confirming', async ({ page, request }) => {
  await createWorkflow(request, `id: e2e-long-${tag}
name: Long wait
steps:
- id: wait
  agent: delay
  with: { duration: 5m }
`);
  const id = await trigger(request, `e2e-long-${tag}`);
  await openHydrated(page, `/runs/${id}`);
  // A 5-minute delay sleeps parked: its box says so rather than "running".
  await expect(node(page, 'wait')).toHaveAttribute('data-status', 'waiting');
  await expect(node(page, 'wait')).toContainText('delay · sleeping');
  // No event arrives while the step waits, yet its clock moves: "Running for" and the bar's
  // duration count up in the page.
  const runningFor = page.locator('.facts div', { hasText: 'Running for' }).locator('dd');
  const barTime = page.locator('.gantt-row[data-step="wait"] .gantt-dur');
  const [since, ran] = [await runningFor.textContent(), await barTime.textContent()];
  await expect(runningFor).not.toHaveText(since!);
  await expect(barTime).not.toHaveText(ran!);
  await page.getByRole('button', { name: 'Cancel run' }).click();
  await expect(page.getByRole('group', { name: 'Confirm' })).toContainText('Cancel this run?');
  await page.getByRole('button', { name: 'Yes' }).click();
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'cancelled');
  await expect(node(page, 'wait')).toHaveAttribute('data-status', 'cancelled');
  // Said as what happened: cancelled, not failed; the retry resumes rather than "retries a failure".
  await expect(page.getByRole('note')).toContainText('Run cancelled:');
  await expect(page.getByRole('note')).not.toContainText('failed');
  await expect(page.getByRole('button', { name: 'Retry from failed step' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Resume where it stopped' })).toBeVisible();
});

test('the monitor shows new runs live, filters by status, and pauses', async ({ page, request }, info) => {
  await createWorkflow(request, `id: e2e-monitor-${tag}
name: Monitored
steps:
- id: a
  agent: simulate
  with: { latency: 300ms }
`);
  await openHydrated(page, `/runs?workflow=e2e-monitor-${tag}`);
  await expect(page.getByText('No runs match these filters.')).toBeVisible();
  const id = await trigger(request, `e2e-monitor-${tag}`);
  // Appears and finishes without a reload.
  const row = page.locator(`tr[data-run="${id}"]`);
  await expect(row).toBeVisible();
  await expect(row).toHaveAttribute('data-status', 'succeeded');

  // Filter through the form: only failed runs of any workflow. A choice applies as it is
  // made, and the URL holds only the filters that are set.
  await openHydrated(page, '/runs');
  await page.getByLabel('Status').selectOption('failed');
  await expect(page).toHaveURL(/\/runs\?status=failed$/);
  await expect(page.locator(`tr[data-run="${id}"]`)).toHaveCount(0);
  const statuses = await page.locator('tbody tr').evaluateAll(rows => rows.map(r => r.getAttribute('data-status')));
  expect(statuses.every(s => s === 'failed')).toBe(true);
  await page.screenshot({ path: info.outputPath('monitor.png'), fullPage: true });

  // Paused: a new run does not appear until live updates resume.
  await openHydrated(page, `/runs?workflow=e2e-monitor-${tag}`);
  await page.getByLabel('Live').uncheck();
  const quiet = await trigger(request, `e2e-monitor-${tag}`);
  await expect(page.getByText('Live updates paused')).toBeVisible();
  await page.waitForTimeout(1000);
  await expect(page.locator(`tr[data-run="${quiet}"]`)).toHaveCount(0);
  await page.getByLabel(/Live/).check();
  await trigger(request, `e2e-monitor-${tag}`);
  await expect(page.locator(`tr[data-run="${quiet}"]`)).toBeVisible();
});

test('the failed runs of a filtered view are retried together after confirming their count', async ({ page, request }, info) => {
  await createWorkflow(request, `id: e2e-bulk-${tag}
name: Bulk
inputs:
  fail: { type: boolean, default: false }
steps:
- id: go
  agent: transform
  with: { jq: 'if .inputs.fail then error("boom") else 1 end' }
`);
  const start = async (fail: boolean) => {
    const r = await request.post(`/api/v1/workflows/e2e-bulk-${tag}/runs?wait=30s`, { data: { inputs: { fail } } });
    expect(r.status(), await r.text()).toBe(200);
    return (await r.json()).run.id as string;
  };
  const failed = [await start(true), await start(true)];
  await start(false);
  await openHydrated(page, `/runs?workflow=e2e-bulk-${tag}&status=failed`);
  await page.getByRole('button', { name: 'Retry failed runs in this view…' }).click();
  const confirm = page.getByRole('group', { name: 'Confirm' });
  await expect(confirm).toContainText('Retry 2 runs from their failed steps?');
  await page.screenshot({ path: info.outputPath('bulk-confirm.png'), fullPage: true });
  await confirm.getByRole('button', { name: 'Yes' }).click();
  await expect(page.getByRole('status')).toHaveText('Started 2 new runs.');
  // Each failed run has exactly one retry, and nothing else was retried.
  const r = await request.get(`/api/v1/runs?workflow=e2e-bulk-${tag}&trigger=retry`);
  const retries = (await r.json()).runs as { parent_run_id: string }[];
  expect(retries.map(run => run.parent_run_id).sort()).toEqual([...failed].sort());
  // Nothing running in this view: said, not asked.
  await page.getByRole('button', { name: 'Cancel running runs in this view…' }).click();
  await expect(page.getByRole('status')).toHaveText('No running runs in this view to cancel.');
});

test('an unknown run is a 404 with a readable message', async ({ page }) => {
  const response = await page.goto('/runs/no-such-run');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('alert')).toContainText('run "no-such-run" not found');
});

test('a Grafana link with every workflow selected (workflow=.*) lists every workflow', async ({ page, request }) => {
  const id = await trigger(request, 'hello');
  await page.goto('/runs?workflow=.*');
  await expect(page.locator(`tr[data-run="${id}"]`)).toBeVisible();
  await expect(page.getByText('No runs match these filters.')).toHaveCount(0);
});

test('a large output is shown cut, with where the rest is, and the page stays small', async ({ page, request }) => {
  await createWorkflow(request, `id: e2e-big-${tag}
name: Big output
steps:
- id: big
  agent: simulate
  with: { output_bytes: 200000 }
`);
  const id = await trigger(request, `e2e-big-${tag}`);
  await expect.poll(async () => (await (await request.get(`/api/v1/runs/${id}`)).json()).status).toBe('succeeded');
  const html = await (await request.get(`/runs/${id}`)).text();
  // The page carries 16 KiB of the 200 KB output (twice: the markup and the hydration data).
  expect(html.length).toBeLessThan(100_000);
  await openHydrated(page, `/runs/${id}`);
  await page.locator('#step-big summary').first().click();
  const output = page.locator('#step-big details.json')
    .filter({ has: page.locator('summary', { hasText: /^Output$/ }) }).locator('pre');
  await expect(output).toContainText(`more bytes not shown here: the whole value is in /api/v1/runs/${id}/steps/big/output`);
  // …where the whole value is, though the run's detail carries only a marker for it.
  const detail = await (await request.get(`/api/v1/runs/${id}`)).json();
  expect(detail.steps[0].output).toMatchObject({ truncated: true, bytes: 200002 });
  const whole = await (await request.get(`/api/v1/runs/${id}/steps/big/output`)).json();
  expect(whole.length).toBe(200000);
  const box = await output.boundingBox();
  expect(box && box.height > 0 && box.width > 0, 'the output is visible').toBeTruthy();
});

test('the monitor shows runs before charts, and an older page does not claim to be live', async ({ page, request }) => {
  const id = await trigger(request, 'hello');
  await openHydrated(page, '/runs');
  await expect(page.getByLabel(/Live/)).toBeVisible();
  const table = await page.locator('table').first().boundingBox();
  const charts = await page.locator('details.charts').boundingBox();
  expect(table!.y).toBeLessThan(charts!.y);
  // A page before some run: older runs, which new ones never join.
  await openHydrated(page, `/runs?before=${id}`);
  await expect(page.getByLabel(/Live/)).toHaveCount(0);
  await expect(page.getByText('An older page: not live')).toBeVisible();
});

test('paging the monitor keeps its filters both ways', async ({ page, request }) => {
  const wf = `paged-${tag}`;
  await createWorkflow(request, `id: ${wf}\nname: Paged\nsteps:\n- id: a\n  agent: simulate\n`);
  // One page (50) and one more, all of this workflow.
  for (let i = 0; i < 51; i++) await trigger(request, wf);
  await openHydrated(page, `/runs?workflow=${wf}&trigger=api`);
  await page.getByRole('link', { name: 'Older runs →' }).click();
  await expect(page).toHaveURL(new RegExp(`/runs\\?before=[^&]+&workflow=${wf}&trigger=api$`));
  await expect(page.locator('table tbody tr')).toHaveCount(1);
  await page.getByRole('link', { name: '← Newest' }).click();
  await expect(page).toHaveURL(new RegExp(`/runs\\?workflow=${wf}&trigger=api$`));
  await expect(page.locator('table tbody tr')).toHaveCount(50);
});

test('on a phone the monitor labels each value of a run, since its header row is hidden', async ({ page, request }) => {
  await trigger(request, 'hello');
  await page.setViewportSize({ width: 390, height: 844 });
  await openHydrated(page, '/runs');
  await expect(page.locator('table thead')).toBeHidden();
  const cell = page.locator('table tbody tr').first().locator('td[data-label="Run time"]');
  await expect(cell).toBeVisible();
  expect(await cell.evaluate(td => getComputedStyle(td, '::before').content)).toBe('"Run time"');
  // On a desktop the header says it once; the cells carry no label.
  await page.setViewportSize({ width: 1280, height: 900 });
  await expect(page.locator('table thead')).toBeVisible();
  expect(await cell.evaluate(td => getComputedStyle(td, '::before').content)).toBe('none');
});

test('a parent run and its child link both ways; the parent shows its outputs', async ({ page, request }, info) => {
  await createWorkflow(request, `id: e2e-child-${tag}
name: Child
inputs:
  n: { type: integer }
outputs: { squared: '{{ steps.square.output }}' }
steps:
- id: square
  agent: transform
  with: { jq: '.inputs.n * .inputs.n' }
`);
  await createWorkflow(request, `id: e2e-parent-${tag}
name: Parent
steps:
- id: call
  agent: workflow
  with: { workflow: e2e-child-${tag}, inputs: { n: 7 } }
- id: report
  agent: transform
  needs: [call]
  with: { jq: '"squared: " + (.steps.call.output.squared | tostring)' }
`);
  const id = await trigger(request, `e2e-parent-${tag}`);
  await openHydrated(page, `/runs/${id}`);
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'succeeded');
  const children = page.locator('section[aria-labelledby="children-h"]');
  await expect(children.locator('tbody tr')).toHaveCount(1);
  await expect(children.locator('tbody tr')).toContainText('call');
  await expect(children.locator('tbody tr')).toContainText(`e2e-child-${tag}`);
  const outputs = page.locator('section[aria-labelledby="outputs-h"]');
  await expect(outputs).toContainText('squared: 49');
  await page.screenshot({ path: info.outputPath('run-parent.png'), fullPage: true });
  // To the child, and back through "Called by".
  await children.locator('a[data-child-run]').click();
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Child #1');
  const calledBy = page.locator('.facts div', { hasText: 'Called by' });
  await expect(calledBy).toContainText('step call');
  await expect(page.locator('section[aria-labelledby="outputs-h"]')).toContainText('"squared": 49');
  await calledBy.locator('a').click();
  await expect(page).toHaveURL(new RegExp(`/runs/${id}$`));
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Parent #1');
});

test('the monitor searches what runs carried and filters by a label clicked on a run', async ({ page, request }, info) => {
  await createWorkflow(request, `id: e2e-search-${tag}
name: Searched orders
inputs:
  order: { type: string }
steps:
- id: ship
  agent: transform
  with: { jq: '{shipped: .inputs.order, by: "courier"}' }
`);
  const start = async (order: string, env: string) => {
    const r = await request.post(`/api/v1/workflows/e2e-search-${tag}/runs?wait=30s`,
      { data: { inputs: { order }, labels: { env, suite: tag } } });
    expect(r.status(), await r.text()).toBe(200);
    return (await r.json()).run.id as string;
  };
  const a = await start(`ORD-${tag}-1742`, 'prod');
  const b = await start(`ORD-${tag}-2001`, 'staging');
  const c = await start(`ORD-${tag}-1799`, 'prod');

  // A search typed into the box applies at Enter, is kept in the URL, and finds part of a
  // word in another case.
  await openHydrated(page, '/runs');
  const search = page.getByRole('searchbox', { name: 'Search' });
  await search.fill(`ord-${tag}-17`);
  await search.press('Enter');
  await expect(page).toHaveURL(new RegExp(`/runs\\?q=ord-${tag}-17$`));
  const rows = page.locator('tbody tr');
  await expect(rows).toHaveCount(2);
  expect(await rows.evaluateAll(r => r.map(x => x.getAttribute('data-run')))).toEqual([c, a]);
  await expect(search).toHaveValue(`ord-${tag}-17`);

  // A run's label is a chip; clicking it narrows the view to that label, with the search kept.
  await page.locator(`tr[data-run="${c}"] a.label`, { hasText: 'env:prod' }).click();
  await expect(page).toHaveURL(/label=env%3Aprod/);
  await expect(rows).toHaveCount(2);
  await page.screenshot({ path: info.outputPath('monitor-search.png'), fullPage: true });
  // A label typed into its field adds to the ones set; the chip with × removes one.
  await page.getByLabel('Label').fill(`suite:${tag}`);
  await page.getByLabel('Label').press('Enter');
  await expect(page).toHaveURL(new RegExp(`label=suite%3A${tag}`));
  await expect(rows).toHaveCount(2);
  await page.locator('a[data-label-filter="env:prod"]').click();
  await expect(page).not.toHaveURL(/env%3Aprod/);
  await search.fill('');
  await search.press('Enter');
  await expect(rows).toHaveCount(3);
  expect(await rows.evaluateAll(r => r.map(x => x.getAttribute('data-run')))).toEqual([c, b, a]);

  // A search too short to look for says why, instead of an empty list.
  await openHydrated(page, '/runs?q=ab');
  await expect(page.getByText('shorter than 3 characters')).toBeVisible();

  // The run page shows the labels, each a link to the runs that carry it.
  await openHydrated(page, `/runs/${b}`);
  const facts = page.locator('dl.facts');
  await expect(facts.getByRole('link', { name: 'env:staging' })).toBeVisible();
  await facts.getByRole('link', { name: `suite:${tag}` }).click();
  await expect(page).toHaveURL(new RegExp(`/runs\\?label=suite%3A${tag}$`));
  await expect(rows).toHaveCount(3);
});

test.describe('read from another time zone', () => {
  test.use({ timezoneId: 'Asia/Kolkata' });

  test('times are the reader\'s own with how long ago, UTC in the tooltip; the timeline has a time axis', async ({ page, request }, info) => {
    await createWorkflow(request, `id: e2e-time-${tag}
name: Timed
steps:
- id: first
  agent: simulate
  with: { latency: 300ms }
- id: second
  needs: [first]
  agent: simulate
  with: { latency: 200ms }
`);
    const r = await request.post(`/api/v1/workflows/e2e-time-${tag}/runs?wait=30s`, { data: {} });
    expect(r.status(), await r.text()).toBe(200);
    const run = (await r.json()).run;
    await openHydrated(page, `/runs/${run.id}`);
    // Kolkata is UTC+05:30: the minutes move too, so a UTC time cannot pass for it.
    const local = new Date(run.created_at + 330 * 60_000);
    const two = (n: number) => String(n).padStart(2, '0');
    const expected = `${local.getUTCFullYear()}-${two(local.getUTCMonth() + 1)}-${two(local.getUTCDate())} `
      + `${two(local.getUTCHours())}:${two(local.getUTCMinutes())}`;
    const created = page.locator('dl.facts time');
    await expect(created).toHaveText(new RegExp(`^${expected} · (just now|\\d+ min ago)$`));
    await expect(created).toHaveAttribute('title', / UTC$/);

    // The time axis: round ticks from +0 across the run, each a readable label in the track.
    const ticks = page.locator('.gantt-axis .gantt-tick');
    expect(await ticks.count()).toBeGreaterThanOrEqual(3);
    await expect(ticks.first()).toHaveText('+0 ms');
    const track = await page.locator('.gantt-axis .gantt-track').boundingBox();
    for (const tick of await ticks.all()) {
      const box = await tick.boundingBox();
      expect(box!.width).toBeGreaterThan(10);
      expect(box!.x).toBeGreaterThanOrEqual(track!.x - 1);
      expect(box!.x + box!.width).toBeLessThanOrEqual(track!.x + track!.width + box!.width / 2 + 1);
    }
    await page.locator('#timeline').screenshot({ path: info.outputPath('timeline.png') });
  });
});
