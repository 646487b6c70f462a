import * as fs from 'fs';
import { test, expect } from '@playwright/test';
import { createWorkflow, openHydrated } from './support';

test('the workflow list shows the seeded workflows and filters after hydration', async ({ page }, info) => {
  await openHydrated(page, '/workflows');
  await expect(page.getByRole('heading', { name: 'Workflows' })).toBeVisible();
  const table = page.getByRole('table', { name: 'Workflows' });
  await expect(table.getByRole('link', { name: 'Hello, Flowscope' })).toBeVisible();
  await expect(table.getByRole('link', { name: 'Always fails' })).toBeVisible();
  await page.screenshot({ path: info.outputPath('workflows.png'), fullPage: true });

  // Typing filters as you type (the server filters; the search goes into the URL).
  await page.getByRole('searchbox', { name: 'Search workflows' }).fill('always');
  await expect(table.getByRole('link', { name: 'Always fails' })).toBeVisible();
  await expect(table.getByRole('link', { name: 'Hello, Flowscope' })).toHaveCount(0);
  await expect(page.getByText(/1 of \d+ workflows/)).toBeVisible();
  await expect(page).toHaveURL(/\/workflows\?q=always$/);

  // The filtered list is a link: it renders on the server, search box filled in.
  await page.reload();
  await expect(page.getByRole('searchbox', { name: 'Search workflows' })).toHaveValue('always');
  await expect(table.getByRole('link', { name: 'Hello, Flowscope' })).toHaveCount(0);
  await expect(page.getByText(/1 of \d+ workflows/)).toBeVisible();
});

test('a long list comes in pages of fifty, searched before it is paged', async ({ page, request }) => {
  const tag = `paged${Date.now()}`;
  for (let i = 0; i < 53; i++) {
    const n = String(i).padStart(2, '0');
    await createWorkflow(request, `id: ${tag}-${n}\nname: Paged ${n}\ntags: [${tag}]\nsteps:\n- id: wait\n  agent: delay\n  with:\n    duration: 1ms\n`);
  }
  await openHydrated(page, `/workflows?q=${tag}`);
  const table = page.getByRole('table', { name: 'Workflows' });
  await expect(table.locator('tbody tr')).toHaveCount(50);
  await expect(page.getByText(/53 of \d+ workflows · page 1 of 2/)).toBeVisible();
  await expect(page.getByRole('link', { name: '← Previous' })).toHaveCount(0);

  await page.getByRole('link', { name: 'Next →' }).click();
  await expect(page).toHaveURL(new RegExp(`/workflows\\?q=${tag}&page=2$`));
  await expect(table.locator('tbody tr')).toHaveCount(3);
  await expect(table.getByRole('link', { name: 'Paged 52' })).toBeVisible();
  await expect(page.getByText(/page 2 of 2/)).toBeVisible();
  await page.getByRole('link', { name: '← Previous' }).click();
  await expect(table.getByRole('link', { name: 'Paged 00' })).toBeVisible();
});

test('the root redirects to the workflow list', async ({ page }) => {
  await page.goto('/');
  await expect(page).toHaveURL(/\/workflows$/);
});

test('a workflow page shows its definition and versions and starts a run', async ({ page }, info) => {
  await openHydrated(page, '/workflows');
  await page.getByRole('link', { name: 'Hello, Flowscope' }).click();
  await expect(page).toHaveURL(/\/workflows\/hello$/);
  await expect(page.getByRole('heading', { name: 'Hello, Flowscope', level: 1 })).toBeVisible();
  await expect(page.getByLabel('Workflow YAML')).toContainText('id: hello');
  await expect(page.getByRole('table', { name: 'Versions' }).getByRole('cell', { name: 'v1', exact: true })).toBeVisible();
  await page.screenshot({ path: info.outputPath('workflow.png'), fullPage: true });
  await page.getByRole('button', { name: 'Run…' }).click();
  const form = page.getByRole('form', { name: 'Run inputs' });
  await expect(form.getByLabel('who (string)')).toHaveValue('world');
  await form.getByRole('button', { name: 'Run' }).click();
  await expect(page).toHaveURL(/\/runs\//);
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'succeeded');
});

test('the Run form has a widget per input type, says what is wrong where, and runs a chosen version', async ({ page, request }, info) => {
  const tag = Math.random().toString(36).slice(2, 8);
  const doc = (word: string) => `id: e2e-typed-${tag}
name: Typed
inputs:
  count: { type: integer, default: 2 }
  loud: { type: boolean, default: false }
  names: { type: array, default: [ada] }
steps:
- id: say
  agent: transform
  with: { jq: '"${word} " + (.inputs.names | join(",")) + " x" + (.inputs.count | tostring) + (if .inputs.loud then "!" else "" end)' }
`;
  await createWorkflow(request, doc('hello'));
  const updated = await request.put(`/api/v1/workflows/e2e-typed-${tag}`, {
    data: doc('hi'), headers: { 'content-type': 'application/yaml' },
  });
  expect(updated.status(), await updated.text()).toBe(200);
  await openHydrated(page, `/workflows/e2e-typed-${tag}?run`);
  const form = page.getByRole('form', { name: 'Run inputs' });
  await expect(form.getByLabel('count (integer)')).toHaveValue('2');
  await expect(form.getByLabel('loud (boolean)')).not.toBeChecked();
  await expect(form.getByLabel('names (array)')).toHaveValue(/"ada"/);
  // Wrong text: each field says what is wrong with it, and nothing starts.
  await form.getByLabel('count (integer)').fill('2.5');
  await form.getByLabel('names (array)').fill('{"not": "a list"}');
  await form.getByRole('button', { name: 'Run' }).click();
  await expect(form.locator('#run-input-count-error')).toHaveText('expected a whole number');
  await expect(form.locator('#run-input-names-error')).toHaveText('expected a JSON list');
  await page.screenshot({ path: info.outputPath('run-form.png'), fullPage: true });
  await expect(page).toHaveURL(/\/workflows\//);
  await form.getByLabel('count (integer)').fill('3');
  await form.getByLabel('names (array)').fill('["ada", "bob"]');
  await form.getByLabel('loud (boolean)').check();
  await form.getByLabel('Version').selectOption('1');
  await form.getByRole('button', { name: 'Run' }).click();
  await expect(page).toHaveURL(/\/runs\//);
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'succeeded');
  await expect(page.locator('.facts')).toContainText('v1');
  await page.locator('#step-say > summary').click();
  await expect(page.locator('#step-say')).toContainText('hello ada,bob x3!');
});

test('an unknown workflow is a 404 with a readable message', async ({ page }) => {
  const response = await page.goto('/workflows/no-such-flow');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('alert')).toContainText('workflow "no-such-flow" not found');
});

test('the list starts a run, then shows its outcome and stats', async ({ page }) => {
  await openHydrated(page, '/workflows');
  await page.getByRole('link', { name: 'Run hello' }).click();
  await expect(page).toHaveURL(/\/workflows\/hello\?run/);
  await page.getByRole('form', { name: 'Run inputs' }).getByRole('button', { name: 'Run' }).click();
  await expect(page).toHaveURL(/\/runs\//);
  await expect(page.locator('.run-title .badge')).toHaveAttribute('data-status', 'succeeded');
  await openHydrated(page, '/workflows');
  const row = page.locator('tr[data-workflow="hello"]');
  await expect(row.locator('.badge')).toHaveAttribute('data-status', 'succeeded');
  await expect(row).toContainText('100 %');
  await expect(row.getByRole('img', { name: /Runs per day/ })).toBeVisible();
});

test('the workflow page compares two versions and lists its runs', async ({ page, request }) => {
  const id = `e2e-diff-${Math.random().toString(36).slice(2, 8)}`;
  const doc = (latency: string) => `id: ${id}\nsteps:\n- id: a\n  agent: simulate\n  with:\n    latency: ${latency}\n`;
  await createWorkflow(request, doc('10ms'));
  expect((await request.put(`/api/v1/workflows/${id}`, { headers: { 'content-type': 'application/yaml' }, data: doc('20ms') })).status()).toBe(200);
  const run = await (await request.post(`/api/v1/workflows/${id}/runs`, { data: {} })).json();
  await openHydrated(page, `/workflows/${id}`);
  await expect(page.getByRole('table', { name: 'Recent runs' }).locator(`tr[data-run="${run.run.id}"]`)).toBeVisible();
  const compare = page.getByRole('form', { name: 'Compare versions' });
  await compare.getByLabel('From').selectOption('1');
  await compare.getByLabel('To').selectOption('2');
  await compare.getByRole('button', { name: 'Compare' }).click();
  const diff = page.getByLabel('Diff', { exact: true });
  await expect(diff).toContainText('-    latency: 10ms');
  await expect(diff).toContainText('+    latency: 20ms');
});

test("a Run that cannot start says so as the run's failure, with the reason", async ({ page, request }) => {
  const id = `e2e-needs-${Math.random().toString(36).slice(2, 8)}`;
  await createWorkflow(request, `id: ${id}
name: Needs an input
inputs:
  who: { type: string }
steps:
- id: a
  agent: simulate
`);
  await openHydrated(page, `/workflows?q=${id}`);
  await page.getByRole('link', { name: `Run ${id}` }).click();
  const form = page.getByRole('form', { name: 'Run inputs' });
  await form.getByRole('button', { name: 'Run' }).click();
  // The server's refusal lands under the field it names.
  await expect(form.locator('#run-input-who-error')).toContainText(/required|missing/);
  await expect(page.getByText('Could not load')).toHaveCount(0);
  await expect(page).toHaveURL(/\/workflows/);
});

test('with sign-in off, Settings is one click from the navigation', async ({ page }) => {
  await openHydrated(page, '/workflows');
  await page.getByRole('link', { name: 'Settings' }).click();
  await expect(page).toHaveURL(/\/settings$/);
  await expect(page.getByRole('heading', { name: 'Settings', level: 1 })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Secrets' })).toBeVisible();
});

test('a workflow that reads a secret nobody set says so before it runs, and where to set it', async ({ page, request }) => {
  const tag = Math.random().toString(36).slice(2, 8);
  const name = `E2E_UNSET_${tag.toUpperCase()}`;
  await createWorkflow(request, `id: e2e-secret-${tag}\nname: Secretive\nsteps:\n- id: call\n  agent: simulate\n  with: {output: '{{ secrets.${name} }}'}\n`);
  await openHydrated(page, `/workflows/e2e-secret-${tag}`);
  const note = page.getByRole('note');
  await expect(note).toContainText(`Needs secret ${name}, which is not set.`);
  await expect(note).toContainText(`FLOWSCOPE_SECRET_${name}`);
  await note.getByRole('link', { name: 'add it in Settings → Secrets' }).click();
  await expect(page).toHaveURL(/\/settings#secrets$/);
  // A workflow whose secrets are all set (or that reads none) shows no such note.
  await openHydrated(page, '/workflows/hello');
  await expect(page.getByRole('note')).toHaveCount(0);
});

test('a workflow is imported from a file, exported, archived, restored and deleted with its runs', async ({ page, request }, info) => {
  const id = `e2e-life-${Math.random().toString(36).slice(2, 8)}`;
  const yaml = `id: ${id}\nname: Life ${id}\nsteps:\n- id: a\n  agent: simulate\n  with:\n    latency: 1ms\n`;
  await openHydrated(page, '/workflows');
  const picker = page.getByLabel('Import a workflow file');
  // A file with problems is refused beside the button, and nothing is saved.
  await picker.setInputFiles({ name: 'bad.yaml', mimeType: 'application/yaml', buffer: Buffer.from(`id: ${id}\nsteps: []\n`) });
  await expect(page.getByText('Could not import the file')).toBeVisible();
  expect((await request.get(`/api/v1/workflows/${id}`)).status()).toBe(404);
  await picker.setInputFiles({ name: `${id}.yaml`, mimeType: 'application/yaml', buffer: Buffer.from(yaml) });
  await expect(page).toHaveURL(new RegExp(`/workflows/${id}$`));
  await expect(page.getByRole('heading', { name: `Life ${id}`, level: 1 })).toBeVisible();

  // Export gives back the file as it was imported, and so does each version's own link.
  for (const name of ['Export', 'Export v1']) {
    const download = page.waitForEvent('download');
    await page.getByRole('link', { name, exact: true }).click();
    const file = await download;
    expect(file.suggestedFilename()).toBe(`${id}.v1.yaml`);
    expect(fs.readFileSync(await file.path(), 'utf8')).toBe(yaml);
  }

  const run = await (await request.post(`/api/v1/workflows/${id}/runs`, { data: {} })).json();
  await expect.poll(async () => (await (await request.get(`/api/v1/runs/${run.run.id}`)).json()).status).toBe('succeeded');

  // Archived: the page says so, the list no longer shows it, the archived list does.
  await page.getByRole('button', { name: 'Archive' }).click();
  const note = page.getByRole('status').filter({ hasText: 'Hidden from the workflow list' });
  await expect(note).toBeVisible();
  await page.screenshot({ path: info.outputPath('workflow-archived.png'), fullPage: true });
  await openHydrated(page, `/workflows?q=${id}`);
  await expect(page.getByText(`No workflows match “${id}”.`)).toBeVisible();
  await page.getByRole('link', { name: 'Archived', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'Archived workflows', level: 1 })).toBeVisible();
  // Searching the archived list stays in it.
  await page.getByRole('searchbox', { name: 'Search workflows' }).fill(id);
  await expect(page).toHaveURL(new RegExp(`/workflows\\?archived=1&q=${id}$`));
  await expect(page.getByText(/^1 (of \d+ )?workflows?$/)).toBeVisible();
  await page.getByRole('table', { name: 'Workflows' }).getByRole('link', { name: `Life ${id}` }).click();
  await page.getByRole('button', { name: 'Restore' }).click();
  await expect(note).toBeHidden();
  await expect(page.getByRole('button', { name: 'Archive' })).toBeVisible();

  // Delete asks first; keeping it changes nothing.
  await page.getByRole('button', { name: 'Delete…' }).click();
  const confirm = page.getByRole('group', { name: 'Confirm' });
  await expect(confirm).toContainText(`Delete “Life ${id}” with all its versions and runs?`);
  await confirm.getByRole('button', { name: 'Keep it' }).click();
  await expect(confirm).toHaveCount(0);
  expect((await request.get(`/api/v1/workflows/${id}`)).status()).toBe(200);
  await page.getByRole('button', { name: 'Delete…' }).click();
  await confirm.getByRole('button', { name: 'Delete', exact: true }).click();
  await expect(page).toHaveURL(/\/workflows$/);
  expect((await request.get(`/api/v1/workflows/${id}`)).status()).toBe(404);
  expect((await request.get(`/api/v1/runs/${run.run.id}`)).status()).toBe(404);
});

test('a paused workflow says so, cannot be run from the page or the list, and runs again once resumed', async ({ page, request }, info) => {
  const id = `e2e-pause-${Math.random().toString(36).slice(2, 8)}`;
  await createWorkflow(request, `id: ${id}\nname: Pausable ${id}\nsteps:\n- id: a\n  agent: simulate\n  with:\n    latency: 1ms\n`);
  await openHydrated(page, `/workflows/${id}`);
  const run = page.getByRole('button', { name: 'Run…' });
  await expect(run).toBeEnabled();
  await page.getByRole('button', { name: 'Pause' }).click();
  const note = page.getByRole('status').filter({ hasText: 'No run starts' });
  await expect(note).toBeVisible();
  await expect(run).toBeDisabled();
  await page.screenshot({ path: info.outputPath('workflow-paused.png'), fullPage: true });
  expect((await request.post(`/api/v1/workflows/${id}/runs`, { data: {} })).status()).toBe(409);

  // The list marks it and offers no Run.
  await openHydrated(page, `/workflows?q=${id}`);
  const row = page.locator(`tr[data-workflow="${id}"]`);
  await expect(row.getByText('Paused', { exact: true })).toBeVisible();
  await expect(row.getByRole('link', { name: `Run ${id}` })).toHaveCount(0);

  await row.getByRole('link', { name: `Pausable ${id}` }).click();
  await page.getByRole('button', { name: 'Resume' }).click();
  await expect(note).toBeHidden();
  await expect(run).toBeEnabled();
  expect((await request.post(`/api/v1/workflows/${id}/runs`, { data: {} })).status()).toBe(202);
});
