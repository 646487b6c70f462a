import { test, expect, type Page } from '@playwright/test';
import { openHydrated } from './support';

// Against the server that requires sign-in (see playwright.config.ts): who may decide matters.
const base = `http://127.0.0.1:${Number(process.env.E2E_PORT ?? 3917) + 2}`;

async function signIn(page: Page, name: string, password: string) {
  await page.goto(`${base}/login`);
  await page.getByLabel('User name').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('.user-menu')).toContainText(name);
}

const GATED = `id: gated-release
name: Gated release
steps:
  - id: approve
    name: Approve the release
    agent: approval
    with:
      prompt: Ship version 2 to production?
      role: operator
      fields: { ticket: { type: string } }
      timeout: 24h
  - id: ship
    agent: transform
    needs: [approve]
    with: { jq: '"shipped " + .steps.approve.output.fields.ticket' }
`;

test('an operator approves a step from the run page; a viewer sees no buttons', async ({ page }, info) => {
  await signIn(page, 'admin', 'e2e-admin-password');
  const headers = { origin: base };
  for (const [name, role] of [['olga', 'operator'], ['vic', 'viewer']]) {
    const r = await page.request.post(`${base}/api/v1/users`, { headers, data: { name, password: `${name}-password`, role } });
    expect([201, 409], await r.text()).toContain(r.status());
  }
  const created = await page.request.post(`${base}/api/v1/workflows`, {
    headers: { ...headers, 'content-type': 'application/yaml' }, data: GATED,
  });
  expect([201, 409], await created.text()).toContain(created.status());
  const triggered = await page.request.post(`${base}/api/v1/workflows/gated-release/runs`, { headers, data: {} });
  expect(triggered.status(), await triggered.text()).toBe(202);
  const runId: string = (await triggered.json()).run.id;
  await page.getByRole('button', { name: 'Sign out' }).click();

  // A viewer reads what the run waits for, and who may decide, without the form.
  await signIn(page, 'vic', 'vic-password');
  await openHydrated(page, `${base}/runs/${runId}`);
  const waiting = page.locator('section.waiting');
  await expect(waiting).toContainText('Approve the release waits for a decision');
  await expect(waiting.locator('blockquote')).toHaveText('Ship version 2 to production?');
  await expect(waiting).toContainText('Who can decide: operators and above.');
  await expect(waiting).toContainText('gives up at');
  await expect(page.locator('.run-title [data-status]')).toHaveText(/waiting/i);
  // The graph draws the step as waiting, not running, and says what for.
  const node = page.locator('svg.dag [data-step="approve"]');
  await expect(node).toHaveAttribute('data-status', 'waiting');
  await expect(node).toContainText('approval · waiting');
  await expect(node).toHaveAttribute('aria-label', 'Approve the release: awaits a decision');
  await expect(page.getByRole('button', { name: 'Approve' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Reject' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Pause' })).toHaveCount(0);
  await page.getByRole('button', { name: 'Sign out' }).click();

  // An operator fills the field, comments and approves: the run goes on, live.
  await signIn(page, 'olga', 'olga-password');
  await openHydrated(page, `${base}/runs/${runId}`);
  const form = page.getByRole('form', { name: 'Decide' });
  await expect(form).toBeVisible();
  const box = await form.boundingBox();
  expect(box && box.width > 200 && box.height > 80, `form box ${JSON.stringify(box)}`).toBeTruthy();
  await page.screenshot({ path: info.outputPath('run-waiting.png'), fullPage: true });
  // A missing field is named, and nothing is decided.
  await form.getByRole('button', { name: 'Approve' }).click();
  await expect(form.getByRole('alert')).toContainText('fields.ticket');
  await form.getByLabel('ticket (string)').fill('CHG-42');
  await form.getByLabel('Comment').fill('window is open');
  // The run changes while the form is half filled (paused, then resumed: the page refetches
  // and redraws): what was typed stays.
  await page.getByRole('button', { name: 'Pause' }).click();
  await expect(page.locator('.run-title [data-status]')).toHaveText(/paused/i);
  await page.getByRole('button', { name: 'Resume' }).click();
  await expect(page.locator('.run-title [data-status]')).toHaveText(/waiting/i);
  await expect(form.getByLabel('ticket (string)')).toHaveValue('CHG-42');
  await expect(form.getByLabel('Comment')).toHaveValue('window is open');
  await form.getByRole('button', { name: 'Approve' }).click();
  await expect(page.locator('.run-title [data-status]')).toHaveText(/succeeded/i, { timeout: 15000 });
  await expect(page.locator('section.waiting')).toHaveCount(0);
  const run = await (await page.request.get(`${base}/api/v1/runs/${runId}`)).json();
  const approve = run.steps.find((s: { step_id: string }) => s.step_id === 'approve');
  expect(approve.output).toMatchObject({ approved: true, by: 'olga', comment: 'window is open', fields: { ticket: 'CHG-42' } });
  const ship = run.steps.find((s: { step_id: string }) => s.step_id === 'ship');
  expect(ship.output).toBe('shipped CHG-42');
});
