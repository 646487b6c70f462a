import { test, expect, type Page, type Locator } from '@playwright/test';
import { openHydrated } from './support';

// The builder, used the way a person does: by clicking, by typing YAML, and by keyboard alone.

let tag = '';
test.beforeEach(() => { tag = Math.random().toString(36).slice(2, 8); });

const node = (page: Page, step: string) => page.locator(`svg.builder-dag [data-step="${step}"]`);

/** Presses Tab until `target` has focus: proves it is reachable by keyboard. */
async function tabTo(page: Page, target: Locator) {
  for (let i = 0; i < 60; i++) {
    if (await target.evaluate(el => el === document.activeElement)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error('not reachable with Tab');
}

test('a workflow is built by clicking, validated live, saved, and run with inputs', async ({ page, baseURL }, info) => {
  await openHydrated(page, '/workflows/new');
  const save = page.getByRole('button', { name: 'Save' });
  await page.getByLabel('Id', { exact: true }).fill(`e2e-built-${tag}`);
  await page.getByLabel('Id', { exact: true }).press('Tab');

  // Second step: an http call after `start`. Its url is required, so a problem appears.
  await node(page, 'start').click();
  await page.getByLabel('Agent').selectOption('http');
  await page.getByRole('button', { name: 'Add step' }).click();
  await expect(node(page, 'http')).toHaveAttribute('data-invalid', 'true');
  await expect(page.getByRole('alert')).toContainText('steps[1].with.url');
  await expect(save).toBeDisabled();

  // Filling it in clears the problem.
  const url = page.getByRole('form', { name: 'Step http' }).locator('[name="url"]');
  await url.fill(`${baseURL}/healthz`);
  await url.press('Tab');
  await expect(page.getByText('Valid — ready to save')).toBeVisible();
  await expect(node(page, 'http')).toHaveAttribute('data-invalid', 'false');

  // Third step, and one dependency drawn by hand: transform also needs `start`.
  await page.getByLabel('Agent').selectOption('transform');
  await page.getByRole('button', { name: 'Add step' }).click();
  const form = page.getByRole('form', { name: 'Step transform' });
  await form.locator('[name="jq"]').fill('{status: .steps.http.output.status, who: .inputs.who}');
  await form.locator('[name="jq"]').press('Tab');
  await form.getByLabel('start').check();
  await expect(page.locator('svg.builder-dag path.edge')).toHaveCount(3);
  await expect(save).toBeEnabled();

  // The YAML tab shows the same workflow; an edit there (a typed input) comes back to the graph.
  await page.getByRole('tab', { name: 'YAML' }).click();
  const yaml = page.getByLabel('Workflow YAML');
  const text = await yaml.inputValue();
  expect(text).toContain(`id: e2e-built-${tag}`);
  expect(text).toMatch(/- id: transform[\s\S]*needs:\n  - http\n  - start/);
  await yaml.fill(text.replace('steps:', 'inputs:\n  who:\n    type: string\n    default: world\nsteps:'));
  await expect(page.getByText('Valid — ready to save')).toBeVisible();
  await page.getByRole('tab', { name: 'Visual' }).click();
  await expect(page.locator('svg.builder-dag .node')).toHaveCount(3);
  await page.screenshot({ path: info.outputPath('builder.png'), fullPage: true });

  await save.click();
  await expect(page.getByRole('status')).toContainText(`Saved e2e-built-${tag} v1`);
  const runForm = page.getByRole('form', { name: 'Run inputs' });
  await expect(runForm.getByLabel('who (string)')).toHaveValue('world');
  await runForm.getByLabel('who (string)').fill('builder');
  await runForm.getByRole('button', { name: 'Run' }).click();

  await expect(page).toHaveURL(/\/runs\//);
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'succeeded');
  for (const step of ['start', 'http', 'transform']) {
    await expect(page.locator(`svg.dag [data-step="${step}"]`)).toHaveAttribute('data-status', 'succeeded');
  }
  await page.locator('#step-transform > summary').click();
  await expect(page.locator('#step-transform')).toContainText('"who": "builder"');
  await expect(page.locator('#step-transform')).toContainText('"status": 200');
});

test('a broken YAML edit is reported with its place and nothing is saved', async ({ page, request }) => {
  await openHydrated(page, '/workflows/new');
  await page.getByRole('tab', { name: 'YAML' }).click();
  await page.getByLabel('Workflow YAML').fill(`id: e2e-broken-${tag}\nsteps:\n- id: a\n  agent: simulate\n  needs: [ghost]\n`);
  await expect(page.getByRole('alert')).toContainText('steps[0].needs[0]');
  await expect(page.getByRole('button', { name: 'Save' })).toBeDisabled();
  expect((await request.get(`/api/v1/workflows/e2e-broken-${tag}`)).status()).toBe(404);
});

test('Tab indents in the YAML editor, and Esc then Tab leaves it', async ({ page }) => {
  await openHydrated(page, '/workflows/new');
  await page.getByRole('tab', { name: 'YAML' }).click();
  const yaml = page.getByLabel('Workflow YAML');
  // Code is set in a monospace font (the builder's form font once overrode it).
  expect(await yaml.evaluate(el => getComputedStyle(el).fontFamily)).toMatch(/mono/i);
  await yaml.fill(`id: e2e-tab-${tag}\nsteps:\n- id: a`);
  await yaml.press('End');
  await page.keyboard.press('Enter');
  // Without the indent this line would be a second list item, not the step's agent.
  await page.keyboard.press('Tab');
  await page.keyboard.type('agent: simulate');
  await expect(yaml).toHaveValue(`id: e2e-tab-${tag}\nsteps:\n- id: a\n  agent: simulate`);
  await expect(page.getByRole('button', { name: 'Save' })).toBeEnabled();
  await page.keyboard.press('Escape');
  await page.keyboard.press('Tab');
  expect(await yaml.evaluate(el => el === document.activeElement)).toBe(false);
});

test('leaving the builder with unsaved edits asks first', async ({ page }) => {
  await openHydrated(page, '/workflows/new');
  const crumb = page.locator('.crumbs').getByRole('link', { name: 'Workflows' });
  // Nothing edited: the link just goes.
  await crumb.click();
  await expect(page).toHaveURL(/\/workflows$/);
  await openHydrated(page, '/workflows/new');
  await page.getByLabel('Id', { exact: true }).fill(`e2e-unsaved-${tag}`);
  let asked = '';
  page.once('dialog', d => { asked = d.message(); void d.dismiss(); });
  await crumb.click();
  await expect.poll(() => asked).toContain('Leave without saving?');
  await expect(page).toHaveURL(/\/workflows\/new$/);
  await expect(page.getByLabel('Id', { exact: true })).toHaveValue(`e2e-unsaved-${tag}`);
  page.once('dialog', d => void d.accept());
  await crumb.click();
  await expect(page).toHaveURL(/\/workflows$/);
});

test('a one-step workflow is created with the keyboard alone', async ({ page, request }) => {
  await openHydrated(page, '/workflows/new');
  await tabTo(page, page.getByLabel('Id', { exact: true }));
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.type(`e2e-keys-${tag}`);
  await tabTo(page, node(page, 'start'));
  await page.keyboard.press('Enter');
  const latency = page.getByRole('form', { name: 'Step start' }).locator('[name="latency"]');
  await tabTo(page, latency);
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.type('5ms');
  await tabTo(page, page.getByRole('button', { name: 'Save' }));
  await page.keyboard.press('Enter');
  await expect(page.getByRole('status')).toContainText(`Saved e2e-keys-${tag} v1`);
  // Saved, it has an edit page: the address, the heading and the title say so.
  await expect(page).toHaveURL(new RegExp(`/workflows/e2e-keys-${tag}/edit$`));
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Edit e2e-keys-${tag}`);
  await expect(page).toHaveTitle(`Edit e2e-keys-${tag} · Flowscope`);
  // Saving again from the same page makes version 2, not a conflict.
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status')).toContainText(`Saved e2e-keys-${tag} v2`);
  const saved = await request.get(`/api/v1/workflows/e2e-keys-${tag}/export`);
  expect(saved.status()).toBe(200);
  expect(await saved.text()).toContain('latency: 5ms');
});

test('the builder opens from the list without a page load and checks as you type', async ({ page }) => {
  // In a --split release build this fetches the builder's own chunk on the way.
  await openHydrated(page, '/workflows');
  await page.evaluate(() => { (window as unknown as { marker: number }).marker = 1; });
  await page.getByRole('link', { name: 'New workflow' }).click();
  await expect(page).toHaveURL(/\/workflows\/new$/);
  await page.getByRole('tab', { name: 'YAML' }).click();
  await page.getByLabel('Workflow YAML').fill(`id: e2e-nav-${tag}\nsteps:\n- id: a\n  agent: nope\n`);
  await expect(page.getByRole('alert')).toContainText('steps[0].agent');
  // Still the same document: the router navigated, the browser did not reload.
  expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);
});

test('a conditional branch and an allowed failure are built in the form, run, and explained', async ({ page }, info) => {
  await openHydrated(page, '/workflows/new');
  await page.getByLabel('Id', { exact: true }).fill(`e2e-branch-${tag}`);
  await page.getByLabel('Id', { exact: true }).press('Tab');

  // `start` decides; `taken` runs only when it says so, `not_taken` only when it does not.
  for (const [id, condition] of [['taken', 'steps.start.output'], ['not_taken', 'not steps.start.output']]) {
    await node(page, 'start').click();
    await page.getByLabel('Agent').selectOption('transform');
    await page.getByRole('button', { name: 'Add step' }).click();
    const form = page.getByRole('form', { name: 'Step transform' });
    await form.locator('[name="jq"]').fill('true');
    await form.locator('[name="jq"]').press('Tab');
    await form.locator('[name="step-if"]').fill(condition);
    await form.locator('[name="step-if"]').press('Tab');
    await form.getByLabel('Step id').fill(id);
    await form.getByLabel('Step id').press('Tab');
  }
  // A syntax error in a condition is caught as it is typed, with its place.
  const taken = page.getByRole('form', { name: 'Step taken' });
  await node(page, 'taken').click();
  await taken.locator('[name="step-if"]').fill('steps.start.output ==');
  await taken.locator('[name="step-if"]').press('Tab');
  await expect(page.getByRole('alert')).toContainText('steps[1].if');
  await taken.locator('[name="step-if"]').fill('steps.start.output');
  await taken.locator('[name="step-if"]').press('Tab');
  await expect(page.getByText('Valid — ready to save')).toBeVisible();

  // An optional step that fails, allowed to.
  await node(page, 'start').click();
  await page.getByLabel('Agent').selectOption('simulate');
  await page.getByRole('button', { name: 'Add step' }).click();
  const optional = page.getByRole('form', { name: 'Step simulate' });
  await optional.locator('[name="failure_rate"]').fill('1');
  await optional.locator('[name="failure_rate"]').press('Tab');
  await optional.getByLabel('Continue on error').check();

  await page.getByRole('tab', { name: 'YAML' }).click();
  const text = await page.getByLabel('Workflow YAML').inputValue();
  expect(text).toContain('if: not steps.start.output');
  expect(text).toContain('continue_on_error: true');
  await page.getByRole('tab', { name: 'Visual' }).click();

  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status')).toContainText(`Saved e2e-branch-${tag} v1`);
  await page.getByRole('form', { name: 'Run inputs' }).getByRole('button', { name: 'Run' }).click();
  await expect(page).toHaveURL(/\/runs\//);
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'succeeded');
  const dag = (step: string) => page.locator(`svg.dag [data-step="${step}"]`);
  await expect(dag('taken')).toHaveAttribute('data-status', 'succeeded');
  await expect(dag('not_taken')).toHaveAttribute('data-status', 'skipped');
  await expect(dag('not_taken')).toHaveAttribute('data-skip', 'condition');
  await expect(dag('not_taken')).toContainText('skipped: if false');
  await expect(dag('simulate')).toHaveAttribute('data-status', 'failed');
  // The skipped box is drawn, and drawn apart from a box that ran.
  const box = await dag('not_taken').locator('rect').boundingBox();
  expect(box && box.width > 50 && box.height > 20).toBeTruthy();
  const dash = (step: string) => dag(step).locator('rect').evaluate(r => getComputedStyle(r).strokeDasharray);
  expect(await dash('not_taken')).not.toBe(await dash('taken'));

  await dag('not_taken').click();
  const panel = page.locator('#step-not_taken');
  await expect(panel).toContainText('Runs if not steps.start.output');
  await expect(panel).toContainText('Skipped: its condition was false.');
  await page.locator('#step-simulate > summary').click();
  await expect(page.locator('#step-simulate')).toContainText('Allowed to fail');
  await page.screenshot({ path: info.outputPath('branch-run.png'), fullPage: true });
});

test('a conditional loop is built in the form, run, and its items inspected', async ({ page }, info) => {
  await openHydrated(page, '/workflows/new');
  await page.getByLabel('Id', { exact: true }).fill(`e2e-loop-${tag}`);
  await page.getByLabel('Id', { exact: true }).press('Tab');

  // `list` makes the items; `each` loops over them, two at once, when there are any.
  await node(page, 'start').click();
  await page.getByLabel('Agent').selectOption('transform');
  await page.getByRole('button', { name: 'Add step' }).click();
  let form = page.getByRole('form', { name: 'Step transform' });
  await form.locator('[name="jq"]').fill('[1, 2, 3, 4, 5, 6]');
  await form.locator('[name="jq"]').press('Tab');
  await form.getByLabel('Step id').fill('list');
  await form.getByLabel('Step id').press('Tab');

  await node(page, 'list').click();
  await page.getByLabel('Agent').selectOption('transform');
  await page.getByRole('button', { name: 'Add step' }).click();
  form = page.getByRole('form', { name: 'Step transform' });
  await form.locator('[name="jq"]').fill('if .item == 3 then error("three is out") else .item * 10 end');
  await form.locator('[name="jq"]').press('Tab');
  await form.locator('[name="step-if"]').fill('steps.list.output | length > 0');
  await form.locator('[name="step-if"]').press('Tab');
  // A loop over something that is not upstream is caught as it is typed.
  await form.locator('[name="step-for-each"]').fill('steps.nope.output');
  await form.locator('[name="step-for-each"]').press('Tab');
  await expect(page.getByRole('alert')).toContainText('steps[2].for_each');
  await form.locator('[name="step-for-each"]').fill('steps.list.output');
  await form.locator('[name="step-for-each"]').press('Tab');
  await form.locator('[name="step-concurrency"]').fill('2');
  await form.locator('[name="step-concurrency"]').press('Tab');
  await form.getByLabel('Continue on error').check();
  // Each item gets a second try, soon.
  await form.getByLabel('Max attempts').fill('2');
  await form.getByLabel('Max attempts').press('Tab');
  await form.getByLabel('Backoff').fill('20ms');
  await form.getByLabel('Backoff').press('Tab');
  await form.getByLabel('Step id').fill('each');
  await form.getByLabel('Step id').press('Tab');
  await expect(page.getByText('Valid — ready to save')).toBeVisible();
  await expect(node(page, 'each')).toHaveAttribute('data-loop', 'true');
  await expect(node(page, 'each').locator('.node-marks')).toHaveText('if each');
  // The marks fit in the box beside the name.
  const [box, marks] = await Promise.all([node(page, 'each').locator('rect').boundingBox(), node(page, 'each').locator('.node-marks').boundingBox()]);
  expect(box && marks && marks.x >= box.x && marks.x + marks.width <= box.x + box.width).toBeTruthy();

  // The YAML tab is the same document.
  await page.getByRole('tab', { name: 'YAML' }).click();
  const text = await page.getByLabel('Workflow YAML').inputValue();
  expect(text).toContain('for_each: steps.list.output');
  expect(text).toContain('concurrency: 2');
  expect(text).toMatch(/retry:\s*\n\s*max_attempts: 2\s*\n\s*backoff: 20ms/);
  await page.getByRole('tab', { name: 'Visual' }).click();

  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status')).toContainText(`Saved e2e-loop-${tag} v1`);
  await page.getByRole('form', { name: 'Run inputs' }).getByRole('button', { name: 'Run' }).click();
  await expect(page).toHaveURL(/\/runs\//);
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'succeeded');
  const loop = page.locator('svg.dag [data-step="each"]');
  await expect(loop).toHaveAttribute('data-status', 'failed');
  await expect(loop).toHaveAttribute('data-loop', 'true');

  const panel = page.locator('#step-each');
  await expect(panel).toContainText('For each item of steps.list.output, 2 at once');
  await expect(panel).toContainText('6 of 6 items ended · 5 succeeded · 1 failed');
  const bar = await panel.locator('.items-progress progress').boundingBox();
  expect(bar && bar.width > 50 && bar.height > 4).toBeTruthy();
  await expect(panel.locator('.item')).toHaveCount(6);

  // Only the failed one, opened: what it was given and why it failed.
  await panel.getByRole('button', { name: 'Failed 1' }).click();
  await expect(panel.getByRole('button', { name: 'Failed 1' })).toHaveAttribute('aria-pressed', 'true');
  await expect(panel.locator('.item')).toHaveCount(1);
  const item = panel.locator('.item[data-item="2"]');
  await item.locator('summary').first().click();
  await expect(item).toContainText('three is out');
  await expect(item.locator('summary').first()).toContainText('2 attempts');
  // Both attempts, in order: the first failed and was retried, the last failed for good.
  const attempts = item.getByRole('list', { name: 'Attempts' }).getByRole('listitem');
  await expect(attempts).toHaveCount(2);
  await expect(attempts.nth(0)).toContainText(/Attempt 1\s*✕?\s*failed.*jq_runtime: jq error: three is out/);
  await expect(attempts.nth(1)).toContainText(/Attempt 2.*failed/);
  await item.screenshot({ path: info.outputPath('item-attempts.png') });
  // Only the retried: the one that failed twice.
  await expect(panel).toContainText('1 failed · 1 retried');
  await panel.getByRole('button', { name: 'Retried 1' }).click();
  await expect(panel.locator('.item')).toHaveCount(1);
  await expect(panel.locator('.item[data-item="2"]')).toBeVisible();
  await panel.getByRole('button', { name: 'Succeeded 5' }).click();
  await expect(panel.locator('.item')).toHaveCount(5);
  await panel.locator('.item[data-item="5"] summary').first().click();
  await expect(panel.locator('.item[data-item="5"]')).toContainText('60');
  // An item that succeeded at once lists no attempts.
  await expect(panel.locator('.item[data-item="5"] summary').first()).toContainText('1 attempt');
  await expect(panel.locator('.item[data-item="5"]').getByRole('list', { name: 'Attempts' })).toHaveCount(0);
  await page.screenshot({ path: info.outputPath('loop-run.png'), fullPage: true });
});

test('the workflow settings form writes inputs, triggers, tags and limits, and Undo and Redo step through edits', async ({ page }, info) => {
  await openHydrated(page, '/workflows/new');
  await page.getByLabel('Id', { exact: true }).fill(`e2e-form-${tag}`);
  await page.getByLabel('Id', { exact: true }).press('Tab');
  const settings = page.getByRole('form', { name: 'Workflow settings' });
  await settings.getByLabel('Tags (comma-separated)').fill('nightly, billing');
  await settings.getByLabel('Tags (comma-separated)').press('Tab');
  await settings.getByLabel('Runs at once').fill('3');
  await settings.getByLabel('Runs at once').press('Tab');
  await settings.getByLabel('Run timeout').fill('10m');
  await settings.getByLabel('Run timeout').press('Tab');

  // An input: added, renamed, typed, given a default.
  await settings.getByRole('button', { name: 'Add input' }).click();
  const row = settings.locator('.input-row').first();
  await row.getByLabel('Name').fill('count');
  await row.getByLabel('Name').press('Tab');
  await settings.locator('.input-row[data-input="count"]').getByLabel('Type').selectOption('integer');
  const count = settings.locator('.input-row[data-input="count"]');
  await count.getByLabel('Default').fill('three');
  await count.getByLabel('Default').press('Tab');
  // A default of the wrong type is a problem, named where it is.
  await expect(page.getByRole('alert')).toContainText('inputs.count');
  await count.getByLabel('Default').fill('3');
  await count.getByLabel('Default').press('Tab');
  await expect(page.getByText('Valid — ready to save')).toBeVisible();

  // Triggers: by hand, a schedule in a zone, a webhook with its secret.
  await settings.getByLabel('By hand (the Run button and the API)').check();
  await settings.getByRole('button', { name: 'Add schedule' }).click();
  await settings.getByLabel('Schedule (cron)').fill('*/15 * * * *');
  await settings.getByLabel('Schedule (cron)').press('Tab');
  await settings.getByLabel('Time zone').fill('Europe/Paris');
  await settings.getByLabel('Time zone').press('Tab');
  await settings.getByLabel(/^Webhook/).check();
  await settings.getByLabel('Secret name').fill('HOOK_TOKEN');
  await settings.getByLabel('Secret name').press('Tab');
  await expect(page.getByText('Valid — ready to save')).toBeVisible();
  await page.screenshot({ path: info.outputPath('builder-settings.png'), fullPage: true });

  await page.getByRole('tab', { name: 'YAML' }).click();
  const yaml = page.getByLabel('Workflow YAML');
  const text = await yaml.inputValue();
  for (const part of ['tags:\n- nightly\n- billing', 'concurrency: 3', 'timeout: 10m', 'inputs:\n  count:\n    type: integer\n    default: 3',
    '- manual: {}', "schedule: '*/15 * * * *'", 'timezone: Europe/Paris', 'secret: HOOK_TOKEN']) {
    expect(text, part).toContain(part);
  }

  // Undo takes back the last edit (the secret), then the one before; Redo brings them back.
  const undo = page.getByRole('button', { name: 'Undo' });
  const redo = page.getByRole('button', { name: 'Redo' });
  await expect(redo).toBeDisabled();
  await undo.click();
  await expect(yaml).not.toHaveValue(/HOOK_TOKEN/);
  await expect(yaml).toHaveValue(/webhook/);
  await undo.click();
  await expect(yaml).not.toHaveValue(/webhook/);
  await redo.click();
  await redo.click();
  await expect(yaml).toHaveValue(/secret: HOOK_TOKEN/);
  await expect(redo).toBeDisabled();
  // The keyboard does the same outside text fields.
  await page.getByRole('tab', { name: 'YAML' }).focus();
  await page.keyboard.press('Control+z');
  await expect(yaml).not.toHaveValue(/HOOK_TOKEN/);
  await page.keyboard.press('Control+Shift+z');
  await expect(yaml).toHaveValue(/secret: HOOK_TOKEN/);

  // Saved, the Run form offers the input with its default.
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Saved' })).toContainText(`Saved e2e-form-${tag} v1`);
  await expect(page.getByLabel(/count/).first()).toHaveValue('3');
});

test('a webhook\'s labels are set in the form, and label the runs its calls start', async ({ page, request }, info) => {
  const secret = `E2E_HOOK_${tag.toUpperCase()}`;
  const put = await request.put(`/api/v1/secrets/${secret}`, { data: { value: `hook-${tag}` } });
  expect(put.status(), await put.text()).toBe(204);
  const id = `e2e-hook-${tag}`;
  await openHydrated(page, '/workflows/new');
  await page.getByLabel('Id', { exact: true }).fill(id);
  await page.getByLabel('Id', { exact: true }).press('Tab');
  const settings = page.getByRole('form', { name: 'Workflow settings' });
  // The body's keys are the inputs: `ref` is one.
  await settings.getByRole('button', { name: 'Add input' }).click();
  await settings.locator('.input-row').first().getByLabel('Name').fill('ref');
  await settings.locator('.input-row').first().getByLabel('Name').press('Tab');
  await settings.getByLabel(/^Webhook/).check();
  await settings.getByLabel('Secret name').fill(secret);
  await settings.getByLabel('Secret name').press('Tab');

  // A label from the body, one from a header; a new one's source is asked for, by path.
  await settings.getByRole('button', { name: 'Add label' }).click();
  await expect(page.getByRole('alert')).toContainText('triggers[0].webhook.labels.label');
  const first = settings.locator('.hook-label-row[data-label="label"]');
  await first.getByLabel('From the call').fill('/ref');
  await first.getByLabel('From the call').press('Tab');
  await settings.locator('.hook-label-row[data-label="label"]').getByLabel('Label', { exact: true }).fill('branch');
  await settings.locator('.hook-label-row[data-label="label"]').getByLabel('Label', { exact: true }).press('Tab');
  await settings.getByRole('button', { name: 'Add label' }).click();
  const second = settings.locator('.hook-label-row[data-label="label"]');
  await second.getByLabel('From the call').fill('header:X-E2E-Event');
  await second.getByLabel('From the call').press('Tab');
  // A name that is taken is refused, and said so.
  await settings.locator('.hook-label-row[data-label="label"]').getByLabel('Label', { exact: true }).fill('branch');
  await settings.locator('.hook-label-row[data-label="label"]').getByLabel('Label', { exact: true }).press('Tab');
  await expect(settings.getByRole('alert')).toContainText('"branch" is not free');
  await settings.locator('.hook-label-row[data-label="label"]').getByLabel('Label', { exact: true }).fill('event');
  await settings.locator('.hook-label-row[data-label="label"]').getByLabel('Label', { exact: true }).press('Tab');
  await expect(page.getByText('Valid — ready to save')).toBeVisible();
  await settings.locator('.hook-labels').screenshot({ path: info.outputPath('hook-labels.png') });

  await page.getByRole('tab', { name: 'YAML' }).click();
  const text = await page.getByLabel('Workflow YAML').inputValue();
  expect(text).toMatch(/labels:\s*\n\s*branch: \/ref\s*\n\s*event: 'header:X-E2E-Event'|labels:\s*\n\s*branch: \/ref\s*\n\s*event: header:X-E2E-Event/);
  await page.getByRole('tab', { name: 'Visual' }).click();
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Saved' })).toContainText(`Saved ${id} v1`);

  // A call: the run it starts carries both labels, and the monitor filters by them.
  const call = await request.post(`/hooks/${id}`, {
    headers: { authorization: `Bearer hook-${tag}`, 'x-e2e-event': 'push' },
    data: { ref: `main-${tag}` },
  });
  expect(call.status(), await call.text()).toBeLessThan(300);
  await openHydrated(page, `/runs?label=branch%3Amain-${tag}`);
  const rows = page.locator('tbody tr');
  await expect(rows).toHaveCount(1);
  await expect(rows.first().locator('a.label', { hasText: `branch:main-${tag}` })).toBeVisible();
  await expect(rows.first().locator('a.label', { hasText: 'event:push' })).toBeVisible();
});

test('dragging from a step\'s dot onto another step connects them, and a loop is refused', async ({ page }) => {
  await openHydrated(page, '/workflows/new');
  await page.getByLabel('Id', { exact: true }).fill(`e2e-drag-${tag}`);
  await page.getByLabel('Id', { exact: true }).press('Tab');
  // Two steps side by side after `start`: neither needs the other yet.
  await node(page, 'start').click();
  await page.getByRole('button', { name: 'Add step' }).click();
  await expect(node(page, 'simulate')).toBeVisible();
  await page.getByRole('button', { name: 'Add beside simulate' }).click();
  await expect(node(page, 'simulate_2')).toBeVisible();
  const edges = page.locator('svg.builder-dag path.edge');
  await expect(edges).toHaveCount(2);
  const a = await node(page, 'simulate').boundingBox();
  const b = await node(page, 'simulate_2').boundingBox();
  expect(Math.abs(a!.x - b!.x), 'parallel steps share a column').toBeLessThan(2);

  // Drag from simulate's dot to simulate_2's box.
  const dragFrom = async (from: string, to: string) => {
    const port = await page.locator(`svg.builder-dag [data-port-hit="${from}"]`).boundingBox();
    const target = await node(page, to).boundingBox();
    await page.mouse.move(port!.x + port!.width / 2, port!.y + port!.height / 2);
    await page.mouse.down();
    await page.mouse.move(target!.x + target!.width / 2, target!.y + target!.height / 2, { steps: 8 });
    // While dragging, a line follows the pointer.
    await expect(page.locator('svg.builder-dag .drag-edge')).toBeVisible();
    await page.mouse.up();
    await expect(page.locator('svg.builder-dag .drag-edge')).toHaveCount(0);
  };
  await dragFrom('simulate', 'simulate_2');
  await expect(page.locator('.graph-hint')).toHaveText('Connected: simulate_2 now needs simulate.');
  await expect(edges).toHaveCount(3);
  await page.getByRole('tab', { name: 'YAML' }).click();
  await expect(page.getByLabel('Workflow YAML')).toHaveValue(/- id: simulate_2\n  agent: simulate\n  needs:\n  - start\n  - simulate\n/);
  await page.getByRole('tab', { name: 'Visual' }).click();
  // The other way round would be a loop: refused, nothing changes.
  await dragFrom('simulate_2', 'start');
  await expect(page.locator('.graph-hint')).toContainText('Not connected');
  await expect(edges).toHaveCount(3);
  await expect(page.getByText('Valid — ready to save')).toBeVisible();
});

test('the YAML editor colours the text and marks the lines that have problems', async ({ page }, info) => {
  await openHydrated(page, '/workflows/new');
  await page.getByRole('tab', { name: 'YAML' }).click();
  const yaml = page.getByLabel('Workflow YAML');
  await yaml.fill(`id: e2e-colours-${tag}\n# a comment\nsteps:\n- id: a\n  agent: simulate\n- id: b\n  agent: http\n  with:\n    url: ''\n    method: GET\n`);
  // steps[1].with.url is required: line 9 is marked, in the gutter and on the line.
  await expect(page.getByRole('alert')).toContainText('steps[1].with.url (line 9)');
  const bad = page.locator('.yaml-gutter .y-num.y-bad');
  await expect(bad).toHaveCount(1);
  await expect(bad).toHaveText('9');
  await expect(bad).toHaveAttribute('title', /url/);
  const colour = (l: Locator) => l.evaluate(el => getComputedStyle(el).color);
  const gutterNumber = page.locator('.yaml-gutter .y-num').nth(0);
  expect(await colour(bad)).not.toBe(await colour(gutterNumber));
  // What a person sees is the coloured copy: the textarea's own text is transparent, and the
  // copy's lines sit exactly where the textarea's are.
  expect(await colour(yaml)).toBe('rgba(0, 0, 0, 0)');
  const lines = page.locator('.yaml-colours .y-line');
  await expect(lines.nth(8)).toHaveClass(/y-bad/);
  const key = lines.nth(0).locator('.y-key');
  const str = lines.nth(4).locator('.y-str');
  const comment = lines.nth(1).locator('.y-com');
  await expect(key).toHaveText('id');
  await expect(str).toHaveText('simulate');
  const colours = new Set([await colour(key), await colour(str), await colour(comment), await colour(yaml)]);
  expect(colours.size, 'keys, strings and comments differ').toBe(4);
  const box = await yaml.boundingBox();
  const lineBox = await lines.nth(8).boundingBox();
  const numberBox = await bad.boundingBox();
  const lineHeight = await yaml.evaluate(el => parseFloat(getComputedStyle(el).lineHeight));
  const padTop = await yaml.evaluate(el => parseFloat(getComputedStyle(el).paddingTop));
  expect(Math.abs(lineBox!.y - (box!.y + padTop + 8 * lineHeight))).toBeLessThan(1.5);
  expect(Math.abs(numberBox!.y - lineBox!.y)).toBeLessThan(1.5);
  await page.screenshot({ path: info.outputPath('yaml-editor.png') });
  // Scrolled, the copy and the numbers move with the text.
  await yaml.fill(Array.from({ length: 80 }, (_, i) => `# line ${i + 1}`).join('\n') + `\nid: e2e-colours-${tag}\nsteps:\n- id: a\n  agent: nope\n`);
  await yaml.evaluate(el => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); });
  const last = page.locator('.yaml-gutter .y-num.y-bad').last();
  await expect(last).toBeInViewport();
  const lastBox = await last.boundingBox();
  const lastLine = await page.locator('.yaml-colours .y-line.y-bad').last().boundingBox();
  expect(Math.abs(lastBox!.y - lastLine!.y)).toBeLessThan(1.5);
});
