// Browser tests against a real Flowscope (debug build from `cargo site`) on a fresh
// SQLite database, driven through Debian's Chromium: no browser is downloaded.
import { defineConfig } from '@playwright/test';
import * as os from 'os';
import * as path from 'path';
import * as fs from 'fs';

const port = Number(process.env.E2E_PORT ?? 3917);
const otlpPort = port + 1;
// A second Flowscope with sign-in on (its admin created from the environment).
const authPort = port + 2;
export const authBase = `http://127.0.0.1:${authPort}`;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowscope-e2e-'));
// The server binary as `cargo site` left it (honours a custom CARGO_TARGET_DIR).
// E2E_PROFILE=release runs the suite against `cargo site --release` (scripts/run.sh).
const targetDir = process.env.CARGO_TARGET_DIR ?? 'target';
const profile = process.env.E2E_PROFILE ?? 'debug';
// scripts/test.sh builds the debug site apart from the release one scripts/run.sh serves.
const siteRoot = profile === 'release' ? 'target/site' : 'target/site-debug';

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    },
  },
  webServer: [{
    command: `node otlp-sink.mjs ${otlpPort}`,
    url: `http://127.0.0.1:${otlpPort}/`,
    reuseExistingServer: false,
  }, {
    command: `${targetDir}/${profile}/flowscope serve`,
    cwd: '..',
    url: `http://127.0.0.1:${port}/readyz`,
    reuseExistingServer: false,
    stdout: 'pipe',
    env: {
      FLOWSCOPE_LISTEN: `127.0.0.1:${port}`,
      FLOWSCOPE_DATABASE_URL: `sqlite://${dataDir}/e2e.db`,
      LEPTOS_SITE_ROOT: siteRoot,
      RUST_LOG: 'warn',
      // No cron runs beside the ones a test starts (http-status has a schedule).
      FLOWSCOPE_SCHEDULER: 'false',
      // The seeded http-status example calls this server on loopback.
      FLOWSCOPE_EGRESS_ALLOW_PRIVATE: 'true',
      // Trace links go to this Grafana (never contacted: the tests read the links only).
      FLOWSCOPE_GRAFANA_URL: 'http://grafana.test:3000',
      FLOWSCOPE_GRAFANA_TEMPO_UID: 'tempo-e2e',
      // Spans are exported (to otlp-sink.mjs), so every run and attempt has its span ids.
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlpPort}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    },
  }, {
    command: `${targetDir}/${profile}/flowscope serve`,
    cwd: '..',
    url: `http://127.0.0.1:${authPort}/readyz`,
    reuseExistingServer: false,
    stdout: 'pipe',
    env: {
      FLOWSCOPE_LISTEN: `127.0.0.1:${authPort}`,
      FLOWSCOPE_DATABASE_URL: `sqlite://${dataDir}/auth/e2e.db`,
      LEPTOS_SITE_ROOT: siteRoot,
      RUST_LOG: 'warn',
      FLOWSCOPE_SCHEDULER: 'false',
      FLOWSCOPE_AUTH: 'true',
      FLOWSCOPE_ADMIN_USER: 'admin',
      FLOWSCOPE_ADMIN_PASSWORD: 'e2e-admin-password',
    },
  }],
});
