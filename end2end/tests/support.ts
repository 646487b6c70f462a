import { expect, type Page, type APIRequestContext } from '@playwright/test';

// Helpers shared by the browser tests.

/** Opens `path` and waits until the wasm bundle has hydrated it (an Effect marks <body>). */
export async function openHydrated(page: Page, path: string) {
  await page.goto(path);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

/** Creates a workflow from YAML through the REST API. */
export async function createWorkflow(request: APIRequestContext, yaml: string) {
  const r = await request.post('/api/v1/workflows', { headers: { 'content-type': 'application/yaml' }, data: yaml });
  expect(r.status(), await r.text()).toBe(201);
}
