/**
 * Headless Debian Chromium driven by playwright-core, for the consoles' browser tests. A missing
 * chromium skips the test locally and fails it under IDSYNC_REQUIRE_INTEGRATION=1 (skipUnless).
 *
 * Every response the page receives is recorded (URL, status, headers, body text) so tests can
 * assert headers and scan every byte the browser saw for secrets.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { findBinary } from './integration.js';

/** No sandbox (tests run as root), nothing phoning home; playwright gives each launch a fresh empty profile. */
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

export interface Seen {
  url: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface TestBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Every response the page got, in order (bodies as text). */
  seen: Seen[];
  /** Console messages and page errors (a CSP violation shows up here). */
  consoleMessages: string[];
  /** Waits for in-flight response bodies to be recorded. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const executablePath = findBinary('chromium');
  if (!executablePath) throw new Error('chromium is not installed');
  const browser = await chromium.launch({ executablePath, headless: true, args: FLAGS, timeout: 120_000 });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  const seen: Seen[] = [];
  const pending = new Set<Promise<void>>();
  const consoleMessages: string[] = [];
  page.on('console', (m) => consoleMessages.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleMessages.push(`pageerror: ${e.message}`));
  page.on('response', (res) => {
    const p = (async () => {
      let body = '';
      try {
        // A live stream (Server-Sent Events) never ends while the page is open: its events come
        // from the log the tests read anyway; headers are still recorded.
        if (!(res.headers()['content-type'] ?? '').startsWith('text/event-stream')) body = (await res.body()).toString('utf8');
      } catch {
        /* a redirect or an aborted request has no body */
      }
      seen.push({ url: res.url(), status: res.status(), headers: await res.allHeaders(), body });
    })();
    pending.add(p);
    void p.finally(() => pending.delete(p));
  });
  return {
    browser,
    context,
    page,
    seen,
    consoleMessages,
    settle: async () => {
      while (pending.size) await Promise.all([...pending]);
    },
    close: async () => {
      await browser.close().catch(() => undefined);
    },
  };
}

/** Screenshots for the docs come from the tests: written only when IDSYNC_SCREENSHOTS=1. */
export async function docScreenshot(page: Page, name: string): Promise<void> {
  if (process.env.IDSYNC_SCREENSHOTS !== '1') return;
  const dir = path.join(path.dirname(new URL(import.meta.url).pathname), '../../docs/img');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  await page.screenshot({ path: file, fullPage: false });
}
