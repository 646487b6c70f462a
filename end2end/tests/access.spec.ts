import { test, expect } from '@playwright/test';
import { openHydrated } from './support';

// Against the second server, which requires sign-in (see playwright.config.ts).
const base = `http://127.0.0.1:${Number(process.env.E2E_PORT ?? 3917) + 2}`;

test('sign in, manage users, tokens and secrets, sign out', async ({ page }, info) => {
  // A page without a session goes to sign-in, and back to it afterwards.
  await page.goto(`${base}/runs`);
  await expect(page).toHaveURL(/\/login\?next=\/runs$/);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill('wrong-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('do not match');
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill('e2e-admin-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(`${base}/runs`);
  await expect(page.locator('.user-menu')).toContainText('admin');
  await expect(page.getByText('No sign-in')).toHaveCount(0);
  // An admin sees every action.
  await openHydrated(page, `${base}/workflows`);
  await expect(page.getByRole('link', { name: 'New workflow' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Run hello' })).toBeVisible();

  await openHydrated(page, `${base}/settings`);
  await expect(page.getByRole('heading', { name: 'Settings' })).toBeVisible();
  // On SQLite this server is the only process: the workers section says so.
  await expect(page.locator('section[aria-labelledby="workers"]')).toContainText(
    'This server runs every workflow',
  );
  // Storage: the database's size as /metrics has it, and how long runs are kept.
  const storage = page.locator('section[aria-labelledby="storage"]');
  await expect(storage).toContainText(/Database\s*[0-9]+\.[0-9] MB/);
  const shownBytes = Number(await storage.locator('[data-database-bytes]').getAttribute('data-database-bytes'));
  expect(shownBytes).toBeGreaterThan(100_000);
  await expect(storage).toContainText('Finished runs are kept');
  await expect(storage).toContainText('Pruned every 10 m 00 s');

  // A token is shown once, then listed without its value.
  const tokens = page.locator('section[aria-labelledby="tokens"]');
  await tokens.getByLabel('Name').fill('ci');
  await tokens.getByRole('button', { name: 'Create token' }).click();
  const shown = page.getByTestId('new-token');
  await expect(shown).toHaveText(/^fs_[0-9a-f]{64}$/);
  const value = (await shown.textContent()) ?? '';
  await expect(tokens.getByRole('cell', { name: 'ci', exact: true })).toBeVisible();
  // The token works against the API with its role.
  const me = await page.request.get(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${value}` } });
  expect(await me.json()).toEqual({ name: 'ci', role: 'operator', via: 'token' });

  // A viewer is added; a secret is saved, listed by name only.
  const users = page.locator('section[aria-labelledby="users"]');
  await users.getByLabel('Name').fill('vera');
  await users.getByLabel('Password').fill('vera-password');
  await users.getByRole('button', { name: 'Add user' }).click();
  await expect(users.getByRole('cell', { name: 'vera' })).toBeVisible();
  const secrets = page.locator('section[aria-labelledby="secrets"]');
  await secrets.getByLabel('Name').fill('E2E_SECRET');
  await secrets.getByLabel('Value').fill('never-shown-value');
  await secrets.getByRole('button', { name: 'Save secret' }).click();
  await expect(secrets.getByRole('cell', { name: 'E2E_SECRET' })).toBeVisible();
  await expect(page.getByText('never-shown-value')).toHaveCount(0);
  // The form is emptied once saved: the value does not linger in the page.
  await expect(secrets.getByLabel('Value')).toHaveValue('');
  await page.screenshot({ path: info.outputPath('settings.png'), fullPage: true });

  // Signing out ends the session; the viewer then signs in and may not open the settings.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(`${base}/login`);
  await page.getByLabel('User name').fill('vera');
  await page.getByLabel('Password').fill('vera-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('.user-menu')).toContainText('viewer');
  await expect(page.getByRole('link', { name: 'Settings' })).toHaveCount(0);
  const refused = await page.request.get(`${base}/settings`);
  expect(refused.status()).toBe(403);
  // A viewer reads the same pages without the actions the server would refuse them.
  await openHydrated(page, `${base}/workflows`);
  await expect(page.getByRole('heading', { name: 'Workflows' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'New workflow' })).toHaveCount(0);
  await expect(page.getByRole('link', { name: 'Run hello' })).toHaveCount(0);
  await openHydrated(page, `${base}/workflows/hello`);
  await expect(page.locator('#main').getByRole('link', { name: 'Runs', exact: true })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Edit' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Run…' })).toHaveCount(0);
});
