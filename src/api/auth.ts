import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { CommonQueryMethods } from 'slonik';
import { findActiveApiKeyByHash } from '../shared/auth/api-key-repository.js';
import { hasScope, hashApiKey, looksLikeApiKey, sameHash, type Scope } from '../shared/auth/api-keys.js';
import type { RateLimiter } from '../shared/auth/rate-limit.js';
import { problem, sendProblem } from './problem.js';

/** Who is calling: the API key that authenticated the request. */
export interface Principal {
  /** The key's id (`apikey list`), or null while auth is disabled. */
  keyId: number | null;
  name: string;
  scopes: readonly string[];
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      principal?: Principal;
    }
  }
}

export const REALM = 'wallet';

/**
 * Paths anyone may call without a key: health and metrics (for orchestrators and Prometheus)
 * and the API's own description. Everything else, including paths no route matches, needs a key.
 */
export function isOpenPath(path: string): boolean {
  return (
    path === '/healthz' ||
    path === '/readyz' ||
    path === '/metrics' ||
    path === '/openapi.json' ||
    path === '/docs' ||
    path.startsWith('/docs/')
  );
}

interface CachedKey {
  principal: Principal;
  hash: Buffer;
  expiresAt: number;
}

/** The most keys one process remembers; past it the cache starts over (keys are few in practice). */
const MAX_CACHED_KEYS = 10_000;

/**
 * Verifies bearer keys against the api_keys table. A verified key is trusted for `ttlMs` without
 * asking the database again, so a revoked key keeps working for at most that long in each API
 * process. Unknown keys are never cached: each costs one indexed lookup.
 */
export class ApiKeyVerifier {
  private readonly cache = new Map<string, CachedKey>();

  constructor(
    private readonly db: CommonQueryMethods,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The principal of a key verified within the TTL, without asking the database; else null. */
  cached(key: string): Principal | null {
    if (!looksLikeApiKey(key)) return null;
    const hash = hashApiKey(key);
    const cached = this.cache.get(hash.toString('base64'));
    return cached && cached.expiresAt > this.now() && sameHash(cached.hash, hash) ? cached.principal : null;
  }

  /** The key's principal, or null if it is not an active key. Database errors propagate (503). */
  async verify(key: string): Promise<Principal | null> {
    if (!looksLikeApiKey(key)) return null;
    const hash = hashApiKey(key);
    // Looked up by hash: neither the lookup nor its timing can reveal anything about other keys.
    const cacheKey = hash.toString('base64');
    const cached = this.cache.get(cacheKey);
    if (cached && cached.expiresAt > this.now() && sameHash(cached.hash, hash)) return cached.principal;
    if (cached) this.cache.delete(cacheKey);

    const row = await findActiveApiKeyByHash(this.db, hash);
    if (!row || !sameHash(row.keyHash, hash)) return null;
    const principal: Principal = { keyId: row.id, name: row.name, scopes: row.scopes };
    if (this.ttlMs > 0) {
      if (this.cache.size >= MAX_CACHED_KEYS) this.cache.clear();
      this.cache.set(cacheKey, { principal, hash, expiresAt: this.now() + this.ttlMs });
    }
    return principal;
  }
}

/** The principal every request gets while AUTH_DISABLED=true. */
export const AUTH_DISABLED_PRINCIPAL: Principal = { keyId: null, name: 'auth-disabled', scopes: ['admin'] };

function challenge(res: Response, params: Record<string, string> = {}): void {
  const extra = Object.entries(params).map(([name, value]) => `, ${name}="${value}"`);
  res.set('WWW-Authenticate', `Bearer realm="${REALM}"${extra.join('')}`);
}

function unauthorized(res: Response, keyGiven: boolean): void {
  if (keyGiven) {
    challenge(res, { error: 'invalid_token', error_description: 'the API key is unknown or revoked' });
    return sendProblem(
      res,
      problem(401, 'unauthorized', 'Unauthorized', 'the API key is unknown, revoked or malformed'),
    );
  }
  challenge(res);
  sendProblem(res, problem(401, 'unauthorized', 'Unauthorized', 'send an API key as "Authorization: Bearer <key>"'));
}

/** `Bearer <token>`, case-insensitive scheme (RFC 7235); undefined when the header is absent. */
function bearerToken(header: string | undefined): string | null | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
  return match ? match[1]! : null;
}

/**
 * Authenticates every request not on an open path: a missing, malformed, unknown or revoked key
 * gets 401 with a `WWW-Authenticate` challenge. With `disabled`, every request is let in as admin.
 * A request whose key this process has not verified recently (no key, a bad one, or one that needs
 * a database lookup) first takes a token from `addressLimiter`, per client address: unknown keys
 * can neither flood the database nor escape rate limiting. A recently verified key skips it, so a
 * flood of bad keys from an address does not lock out the good keys behind it; requests that
 * arrive while their key is being looked up share that lookup and take no token (a client opening
 * with 64 concurrent requests costs one lookup and one token, not 64).
 */
export function authenticate(options: {
  verifier: ApiKeyVerifier;
  disabled: boolean;
  addressLimiter?: RateLimiter;
}): RequestHandler {
  /** First requests of keys this process is checking now; later ones with the same key wait for them. */
  const checking = new Map<string, Promise<Principal | null | 'refused'>>();
  return (req: Request, res: Response, next: NextFunction) => {
    if (isOpenPath(req.path)) return next();
    if (options.disabled) {
      res.locals.principal = AUTH_DISABLED_PRINCIPAL;
      return next();
    }
    const token = bearerToken(req.get('authorization'));
    const known = token ? options.verifier.cached(token) : null;
    if (known) {
      res.locals.principal = known;
      return next();
    }
    // Another request is already checking this key: share its answer, take no token of our own.
    const shared = token ? checking.get(token) : undefined;
    if (shared) {
      shared.then((outcome) => {
        if (outcome === 'refused') return refuse(res, 1);
        if (!outcome) return unauthorized(res, true);
        res.locals.principal = outcome;
        next();
      }, next);
      return;
    }
    const check = admit(options.addressLimiter, `address:${req.ip ?? 'unknown'}`, res, false).then(
      async (admitted): Promise<Principal | null | 'refused'> => {
        if (!admitted) return 'refused';
        if (!token) return null;
        return options.verifier.verify(token);
      },
    );
    if (token) {
      checking.set(token, check);
      void check.finally(() => checking.delete(token)).catch(() => undefined);
    }
    check
      .then((outcome) => {
        if (outcome === 'refused') return; // admit has answered 429
        if (token === undefined) return unauthorized(res, false);
        if (!outcome) return unauthorized(res, true);
        res.locals.principal = outcome;
        next();
      })
      .catch(next);
  };
}

/**
 * Takes a token for `caller`; on refusal answers 429 with `Retry-After` and resolves false. With
 * `advertise`, every decided answer carries `RateLimit-Limit` and `RateLimit-Remaining`.
 */
async function admit(
  limiter: RateLimiter | undefined,
  caller: string,
  res: Response,
  advertise: boolean,
): Promise<boolean> {
  if (!limiter?.enabled) return true;
  const decision = await limiter.take(caller);
  if (!decision) return true;
  if (advertise) {
    res.set('RateLimit-Limit', String(decision.limit));
    res.set('RateLimit-Remaining', String(decision.remaining));
  }
  if (decision.allowed) return true;
  refuse(res, decision.retryAfterSeconds);
  return false;
}

function refuse(res: Response, retryAfterSeconds: number): void {
  res.set('Retry-After', String(retryAfterSeconds));
  sendProblem(res, problem(429, 'rate-limited', 'Too Many Requests', `slow down; retry after ${retryAfterSeconds} s`));
}

/** 403 unless the authenticated key holds `scope` (or admin). Must run after `authenticate`. */
export function requireScope(scope: Scope): RequestHandler {
  return (_req: Request, res: Response, next: NextFunction) => {
    const principal = res.locals.principal;
    if (principal && hasScope(principal.scopes, scope)) return next();
    challenge(res, { error: 'insufficient_scope', scope });
    sendProblem(
      res,
      problem(403, 'forbidden', 'Forbidden', `this API key lacks the scope "${scope}"`, { requiredScope: scope }),
    );
  };
}

/**
 * Per-key rate limit (per client address while auth is disabled). Adds `RateLimit-Limit` and
 * `RateLimit-Remaining` to every answer it decides on; a refusal is 429 with `Retry-After`.
 */
export function rateLimit(limiter: RateLimiter): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const principal = res.locals.principal;
    if (!limiter.enabled || !principal) return next();
    const caller = principal.keyId === null ? `ip:${req.ip ?? 'unknown'}` : `key:${principal.keyId}`;
    admit(limiter, caller, res, true).then((admitted) => {
      if (admitted) next();
    }, next);
  };
}
