import { test, expect } from '@playwright/test';

// Hydration sets data-hydrated on <body> from an Effect, which only runs in the browser.
async function openHydrated(page, path: string) {
  await page.goto(path);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

test('the workflow list shows the seeded workflows and filters after hydration', async ({ page }, info) => {
  await openHydrated(page, '/workflows');
  await expect(page.getByRole('heading', { name: 'Workflows' })).toBeVisible();
  const table = page.getByRole('table', { name: 'Workflows' });
  await expect(table.getByRole('link', { name: 'Hello, Flowscope' })).toBeVisible();
  await expect(table.getByRole('link', { name: 'Always fails' })).toBeVisible();
  await page.screenshot({ path: info.outputPath('workflows.png'), fullPage: true });

  // Typing filters on the client: only works once the wasm bundle has hydrated the page.
  await page.getByRole('searchbox', { name: 'Search workflows' }).fill('fail');
  await expect(table.getByRole('link', { name: 'Always fails' })).toBeVisible();
  await expect(table.getByRole('link', { name: 'Hello, Flowscope' })).toHaveCount(0);
  await expect(page.getByText(/1 of \d+ workflows/)).toBeVisible();
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
  await expect(page.getByRole('table', { name: 'Versions' }).getByRole('cell', { name: 'v1' })).toBeVisible();
  await page.getByRole('button', { name: 'Run with defaults' }).click();
  await expect(page.getByRole('status')).toContainText('Run queued:');
  await page.screenshot({ path: info.outputPath('workflow.png'), fullPage: true });
});

test('an unknown workflow is a 404 with a readable message', async ({ page }) => {
  const response = await page.goto('/workflows/no-such-flow');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('alert')).toContainText('workflow "no-such-flow" not found');
});
