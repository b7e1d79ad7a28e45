/**
 * Serves the local dashboard: the page at `/`, its script (`app.ts` with the typed client, bundled
 * for the browser by esbuild on first request), its stylesheet and uPlot from node_modules. The
 * page itself is public; the API calls it makes need the same bearer token as any client.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const UPLOT_DIST = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');

interface Asset {
  readonly type: string;
  /** Reads (or builds) the asset's bytes. */
  readonly load: () => Promise<string | Buffer>;
}

let bundle: Promise<string> | undefined;

/** `app.ts` and what it imports (the client), as one browser script; built once per process. */
function buildApp(): Promise<string> {
  bundle ??= (async () => {
    // esbuild is a dev dependency: the dashboard runs from a checkout (`npm ci`), like `npm start`.
    const { build } = await import('esbuild');
    const result = await build({
      entryPoints: [join(HERE, 'app.ts')],
      bundle: true,
      format: 'esm',
      // The browser platform refuses Node built-ins: the client must stay fetch-only.
      platform: 'browser',
      target: 'es2022',
      write: false,
      minify: false,
      legalComments: 'none',
      logLevel: 'silent',
    });
    return result.outputFiles[0]?.text ?? '';
  })();
  bundle.catch(() => {
    bundle = undefined;
  });
  return bundle;
}

const ASSETS: Record<string, Asset> = {
  '/': { type: 'text/html; charset=utf-8', load: () => readFile(join(HERE, 'index.html')) },
  '/dashboard/app.js': { type: 'text/javascript; charset=utf-8', load: buildApp },
  '/dashboard/style.css': { type: 'text/css; charset=utf-8', load: () => readFile(join(HERE, 'style.css')) },
  '/dashboard/uplot.js': {
    type: 'text/javascript; charset=utf-8',
    load: () => readFile(join(UPLOT_DIST, 'uPlot.iife.min.js')),
  },
  '/dashboard/uplot.css': {
    type: 'text/css; charset=utf-8',
    load: () => readFile(join(UPLOT_DIST, 'uPlot.min.css')),
  },
};

/**
 * The page may load only its own files and call only its own origin; uPlot sizes elements inline.
 * Images may also come from 127.0.0.1: presigned storage URLs name it even when the page was opened
 * as localhost.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: http://127.0.0.1:*; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const isDashboardPath = (pathname: string): boolean =>
  pathname === '/' || pathname.startsWith('/dashboard/');

export async function serveDashboard(request: IncomingMessage, response: ServerResponse, pathname: string) {
  request.resume();
  const asset = ASSETS[pathname];
  const fail = (status: number, code: string, message: string) => {
    response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    response.end(JSON.stringify({ error: { code, message } }));
  };
  if (!asset) return fail(404, 'NOT_FOUND', `No dashboard file ${pathname}.`);
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    return fail(405, 'METHOD_NOT_ALLOWED', `${pathname} accepts GET, not ${request.method}.`);
  }
  let body: string | Buffer;
  try {
    body = await asset.load();
  } catch (error) {
    return fail(
      500,
      'DASHBOARD_UNAVAILABLE',
      `The dashboard could not be built: ${(error as Error).message}`,
    );
  }
  response.writeHead(200, {
    'content-type': asset.type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    ...(pathname === '/' ? { 'content-security-policy': CSP } : {}),
  });
  response.end(request.method === 'HEAD' ? undefined : body);
}
