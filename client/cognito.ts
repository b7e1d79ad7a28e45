/**
 * OAuth 2.0 client-credentials tokens, as Amazon Cognito issues them to the deployed API's app
 * clients (one per tenant). Browser-safe (fetch + btoa), though a client secret belongs on a server.
 */
import { apiErrorFrom, DescentApiError, DescentError, DescentNetworkError } from './errors.ts';

export interface ClientCredentials {
  /** The token endpoint, e.g. `https://<domain>.auth.<region>.amazoncognito.com/oauth2/token`. */
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Space-separated scopes, e.g. `descent/read descent/write`. @default the app client's scopes */
  readonly scope?: string;
}

export interface AccessToken {
  readonly accessToken: string;
  /** When it expires, in ms since the epoch. */
  readonly expiresAt: number;
}

/** Somewhere to keep a token between processes (the CLI keeps it in a 0600 file). */
export interface TokenCache {
  load(): Promise<AccessToken | undefined>;
  save(token: AccessToken): Promise<void>;
}

export interface TokenOptions {
  readonly fetch?: typeof fetch;
  /** @default Date.now */
  readonly now?: () => number;
  readonly signal?: AbortSignal;
}

/** `POST {tokenUrl}` with `grant_type=client_credentials` and HTTP Basic client authentication. */
export async function fetchClientCredentialsToken(
  credentials: ClientCredentials,
  options: TokenOptions = {},
): Promise<AccessToken> {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const now = options.now ?? Date.now;
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (credentials.scope) form.set('scope', credentials.scope);
  // RFC 6749 §2.3.1: id and secret are form-encoded, then joined with ':' and base64-encoded.
  const basic = btoa(
    `${encodeURIComponent(credentials.clientId)}:${encodeURIComponent(credentials.clientSecret)}`,
  );
  const started = now();
  let response: Response;
  try {
    response = await doFetch(credentials.tokenUrl, {
      method: 'POST',
      headers: {
        authorization: `Basic ${basic}`,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: form.toString(),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    throw new DescentNetworkError(`Cannot reach the token endpoint ${credentials.tokenUrl}.`, {
      cause: error,
    });
  }
  const text = await response.text();
  if (!response.ok) {
    const error = apiErrorFrom(
      response.status,
      response.statusText,
      text,
      response.headers,
      'token endpoint',
    );
    throw new DescentApiError(
      error.status,
      error.code,
      `The token endpoint refused the client credentials: ${error.message}`,
      error.requestId ? { requestId: error.requestId } : {},
    );
  }
  let body: { access_token?: unknown; expires_in?: unknown };
  try {
    body = JSON.parse(text);
  } catch {
    throw new DescentError('TOKEN_ERROR', 'The token endpoint did not answer with JSON.');
  }
  if (typeof body.access_token !== 'string' || body.access_token === '') {
    throw new DescentError('TOKEN_ERROR', 'The token endpoint answered without an access_token.');
  }
  const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : Number(body.expires_in ?? 3600);
  return {
    accessToken: body.access_token,
    // Counted from before the request, so the token never outlives what the server meant.
    expiresAt: started + (Number.isFinite(expiresIn) ? expiresIn : 3600) * 1000,
  };
}

export interface ProviderOptions extends Omit<TokenOptions, 'signal'> {
  readonly cache?: TokenCache;
  /** Fetch a new token this long before the old one expires, in ms. @default 60000 */
  readonly marginMs?: number;
}

/**
 * A token provider for `DescentClient`: returns the cached token until `marginMs` before it
 * expires, then fetches a new one (concurrent callers share one fetch).
 */
export function clientCredentialsProvider(
  credentials: ClientCredentials,
  options: ProviderOptions = {},
): () => Promise<string> {
  const now = options.now ?? Date.now;
  const margin = options.marginMs ?? 60_000;
  const fresh = (t: AccessToken | undefined): t is AccessToken => !!t && t.expiresAt - margin > now();
  let current: AccessToken | undefined;
  let pending: Promise<AccessToken> | undefined;
  return async () => {
    if (fresh(current)) return current.accessToken;
    pending ??= (async () => {
      try {
        const cached = await options.cache?.load();
        if (fresh(cached)) return cached;
        const token = await fetchClientCredentialsToken(credentials, options);
        await options.cache?.save(token);
        return token;
      } finally {
        pending = undefined;
      }
    })();
    current = await pending;
    return current.accessToken;
  };
}
