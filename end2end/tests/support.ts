import { expect, type Page, type APIRequestContext } from '@playwright/test';

// Helpers shared by the browser tests.

/** Opens `path` and waits until the wasm bundle has hydrated it (an Effect marks <body>).
 *  The page's Content-Security-Policy must not have blocked anything on the way. */
export async function openHydrated(page: Page, path: string) {
  const blocked: string[] = [];
  const seen = (m: { text(): string }) => {
    if (/Content Security Policy/i.test(m.text())) blocked.push(m.text());
  };
  page.on('console', seen);
  await page.goto(path);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  page.off('console', seen);
  expect(blocked, 'CSP violations').toEqual([]);
}

/** Creates a workflow from YAML through the REST API. */
export async function createWorkflow(request: APIRequestContext, yaml: string) {
  const r = await request.post('/api/v1/workflows', { headers: { 'content-type': 'application/yaml' }, data: yaml });
  expect(r.status(), await r.text()).toBe(201);
}
