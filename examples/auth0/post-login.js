/**
 * smile-factor: Auth0 post-login Action (Login / Post Login trigger).
 *
 * Two modes, picked by the secrets:
 *
 * UNSIGNED (no SMILE_CTX_SECRET / SMILE_VERDICT_SECRET): a playful check, not a
 * security control. The verdict comes back as a query parameter (`notsmiling=true`)
 * on Auth0's `/continue` URL, and the user's browser controls that URL: anyone can
 * type `notsmiling=true` by hand and skip the page.
 *
 * SIGNED (both secrets set, README "Use with Auth0"): the Action sends a signed
 * context token (`session_token`, HS256 with SMILE_CTX_SECRET) carrying a one-time
 * nonce; the verifier server re-judges face crops and posts back a verdict token
 * (`smile_token`, HS256 with SMILE_VERDICT_SECRET). The Action accepts nothing else:
 * a query-string verdict is denied.
 *
 * Flow:
 *   onExecutePostLogin  - skip if our factor was completed recently in this session;
 *                         otherwise send the user to the smile page (Auth0 appends
 *                         its own `state`).
 *   onContinuePostLogin - unsigned: `notsmiling=true` (and no reason) in the query
 *                         records the factor, anything else denies.
 *                         signed: the `smile_token` must pass Auth0's checks
 *                         (signature, exp, state) and ours (iss, aud, sub, nonce,
 *                         lifetime, v); its claims then decide, with the same rules.
 *
 * Secrets (Action -> Secrets):
 *   SMILE_PAGE_URL              required; https URL of the hosted page (fail closed if not)
 *   SMILE_FACTOR_URL            optional; identifier recorded for the factor
 *                               (default: the page URL's origin + path)
 *   SMILE_TTL_SECONDS           optional; how long a completed check stays valid in the
 *                               session (default 3600, 0 = every login, max 31536000)
 *   SMILE_WHEN_CANNOT_REDIRECT  optional; `deny` (default) or `skip`, for flows that cannot
 *                               redirect (refresh token, password grant, prompt=none)
 *   Signed mode (set all three to turn it on; any one alone is a config error):
 *   SMILE_CTX_SECRET            key for the context token to the server (>= 32 chars)
 *   SMILE_VERDICT_SECRET        key for the verdict token back (>= 32 chars, != ctx key)
 *   SMILE_ISSUER                the verifier server's public URL: the verdict's `iss`
 *   SMILE_VERDICT_SECRET_PREV   optional; the previous verdict key, during rotation
 *   SMILE_TENANT                optional; the tenant host expected in the verdict's `aud`
 *                               (default: event.request.hostname)
 *   SMILE_MODE                  optional; `straight` (default: a smile fails) or `smile`
 *                               (smile to sign in): the verdict's `mode` must be this one
 *
 * A signed pass also needs every just-in-time prompt met (`prompts: "met/total"`), and
 * the transaction's nonce is cleared once read: a verdict works for one continue only.
 */

'use strict';

const { randomBytes } = require('node:crypto');

const DEFAULT_TTL_SECONDS = 3600;
const MAX_TTL_SECONDS = 365 * 24 * 3600;

const CONFIG_MESSAGE_PREFIX = 'The smile check is not configured correctly: ';
const CANNOT_REDIRECT_MESSAGE =
  'The smile check needs an interactive login; it cannot run in this flow.';
const GENERIC_DENY_MESSAGE = 'The smile check did not complete.';
const UNSIGNED_DENY_MESSAGE =
  'The smile check result was not signed by the verifier; this login requires a signed result.';
const UNVERIFIED_MESSAGE_PREFIX = 'The smile check result could not be verified: ';

// Protocol constants: the server and the page use the same names.
const NONCE_METADATA_KEY = 'smile_nonce';
const TOKEN_PARAMETER = 'smile_token';
const CTX_USE = 'smile-ctx';
const CTX_EXPIRES_IN_SECONDS = 300;
const VERDICT_MAX_LIFETIME_SECONDS = 120;
const PROTOCOL_VERSION = 1;
// 32 random bytes print as 43-44 base64 characters; a shorter secret is a mistake.
const MIN_SECRET_LENGTH = 32;

/** Deny messages per `reason` sent by the page or the server (with `notsmiling=false`). */
const REASON_MESSAGES = new Map([
  ['smiled', 'You smiled.'],
  ['no_face', 'No face was visible.'],
  ['interrupted', 'The check was interrupted.'],
  ['camera_denied', 'Camera access was denied.'],
  ['camera_unavailable', 'No camera was available.'],
  ['error', 'The smile check failed to load.'],
  ['camera_lost', 'The camera stopped during the check.'],
  ['prompt_missed', 'The on-screen prompt was not followed.'],
  ['no_smile', 'No smile was seen.'],
]);

const MODES = new Set(['straight', 'smile']);

/** An own property of `obj`, or undefined (never inherited ones like `toString`). */
function own(obj, key) {
  if (obj === null || typeof obj !== 'object') return undefined;
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

/** A secret as a trimmed string, or undefined when unset or blank. */
function secret(secrets, key) {
  const value = own(secrets, key);
  if (value === undefined || value === null) return undefined;
  const text = String(value).trim();
  return text === '' ? undefined : text;
}

/** An absolute https URL with a host and no user info, or null. */
function httpsUrl(text) {
  let url;
  try {
    url = new URL(text);
  } catch (_) {
    return null;
  }
  if (url.protocol !== 'https:' || url.hostname === '') return null;
  if (url.username !== '' || url.password !== '') return null;
  return url;
}

/**
 * Reads the Action secrets. Returns `{ config }` or `{ error }` (a message safe to
 * show: it names the secret, never its value).
 */
function readConfig(secrets) {
  const pageText = secret(secrets, 'SMILE_PAGE_URL');
  if (pageText === undefined) {
    return { error: `${CONFIG_MESSAGE_PREFIX}SMILE_PAGE_URL is not set.` };
  }
  const page = httpsUrl(pageText);
  if (page === null) {
    return { error: `${CONFIG_MESSAGE_PREFIX}SMILE_PAGE_URL must be an https:// URL.` };
  }

  let factorUrl = page.origin + page.pathname;
  const factorText = secret(secrets, 'SMILE_FACTOR_URL');
  if (factorText !== undefined) {
    if (httpsUrl(factorText) === null) {
      return { error: `${CONFIG_MESSAGE_PREFIX}SMILE_FACTOR_URL must be an https:// URL.` };
    }
    factorUrl = factorText;
  }

  let ttlSeconds = DEFAULT_TTL_SECONDS;
  const ttlText = secret(secrets, 'SMILE_TTL_SECONDS');
  if (ttlText !== undefined) {
    const ttl = /^\d{1,9}$/.test(ttlText) ? Number(ttlText) : NaN;
    if (!(ttl >= 0 && ttl <= MAX_TTL_SECONDS)) {
      return {
        error: `${CONFIG_MESSAGE_PREFIX}SMILE_TTL_SECONDS must be a whole number of seconds from 0 to ${MAX_TTL_SECONDS}.`,
      };
    }
    ttlSeconds = ttl;
  }

  const when = secret(secrets, 'SMILE_WHEN_CANNOT_REDIRECT');
  if (when !== undefined && when !== 'skip' && when !== 'deny') {
    return {
      error: `${CONFIG_MESSAGE_PREFIX}SMILE_WHEN_CANNOT_REDIRECT must be "skip" or "deny".`,
    };
  }

  const { signed, error } = readSignedConfig(secrets);
  if (error !== undefined) return { error };

  return {
    config: {
      pageUrl: page.href,
      factorUrl,
      ttlSeconds,
      skipWhenCannotRedirect: when === 'skip',
      signed, // null in the unsigned mode
    },
  };
}

/**
 * The signed mode's secrets. Returns `{ signed }` (null when none of them is set) or
 * `{ error }`. Setting only some of them is an error, not the unsigned mode: a
 * half-done setup must not silently accept query-string verdicts.
 */
function readSignedConfig(secrets) {
  const ctxSecret = secret(secrets, 'SMILE_CTX_SECRET');
  const verdictSecret = secret(secrets, 'SMILE_VERDICT_SECRET');
  const verdictSecretPrev = secret(secrets, 'SMILE_VERDICT_SECRET_PREV');
  const issuer = secret(secrets, 'SMILE_ISSUER');
  const tenant = secret(secrets, 'SMILE_TENANT');
  const mode = secret(secrets, 'SMILE_MODE');
  if ([ctxSecret, verdictSecret, verdictSecretPrev, issuer, tenant, mode].every((v) => v === undefined)) {
    return { signed: null };
  }

  for (const [name, value] of [
    ['SMILE_CTX_SECRET', ctxSecret],
    ['SMILE_VERDICT_SECRET', verdictSecret],
    ['SMILE_ISSUER', issuer],
  ]) {
    if (value === undefined) {
      return { error: `${CONFIG_MESSAGE_PREFIX}${name} is not set (the signed mode needs SMILE_CTX_SECRET, SMILE_VERDICT_SECRET and SMILE_ISSUER).` };
    }
  }
  for (const [name, value] of [
    ['SMILE_CTX_SECRET', ctxSecret],
    ['SMILE_VERDICT_SECRET', verdictSecret],
    ['SMILE_VERDICT_SECRET_PREV', verdictSecretPrev],
  ]) {
    if (value !== undefined && value.length < MIN_SECRET_LENGTH) {
      return { error: `${CONFIG_MESSAGE_PREFIX}${name} must be at least ${MIN_SECRET_LENGTH} characters (use 32 random bytes).` };
    }
  }
  // One key per direction, so a token cannot be reflected from one into the other.
  if (ctxSecret === verdictSecret || ctxSecret === verdictSecretPrev) {
    return { error: `${CONFIG_MESSAGE_PREFIX}SMILE_CTX_SECRET must differ from the verdict secrets.` };
  }
  if (httpsUrl(issuer) === null) {
    return { error: `${CONFIG_MESSAGE_PREFIX}SMILE_ISSUER must be an https:// URL.` };
  }
  if (mode !== undefined && !MODES.has(mode)) {
    return { error: `${CONFIG_MESSAGE_PREFIX}SMILE_MODE must be "straight" or "smile".` };
  }
  if (tenant !== undefined && !/^[a-z0-9.-]+$/i.test(tenant)) {
    return { error: `${CONFIG_MESSAGE_PREFIX}SMILE_TENANT must be a host name such as my-tenant.us.auth0.com.` };
  }

  return {
    signed: {
      ctxSecret,
      // Current key first; the previous one only while a rotation is under way.
      verdictSecrets: verdictSecretPrev === undefined ? [verdictSecret] : [verdictSecret, verdictSecretPrev],
      issuer,
      tenant: tenant === undefined ? undefined : tenant.toLowerCase(),
      mode: mode ?? 'straight',
    },
  };
}

/** A method record's timestamp in ms since the epoch, or NaN if unusable. */
function timestampMs(value) {
  if (typeof value === 'number') return Number.isFinite(value) ? value : NaN;
  if (value instanceof Date) return value.getTime();
  // ISO 8601 only: Date.parse alone accepts too many loose formats.
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value)) {
    return Date.parse(value);
  }
  return NaN;
}

/** True when the session holds our factor's record, completed less than ttl ago. */
function hasFreshRecord(event, factorUrl, ttlSeconds) {
  const methods = own(own(event, 'authentication'), 'methods');
  if (!Array.isArray(methods)) return false;
  const now = Date.now();
  return methods.some((m) => {
    if (m === null || typeof m !== 'object') return false;
    if (own(m, 'name') !== factorUrl && own(m, 'url') !== factorUrl) return false;
    const t = timestampMs(own(m, 'timestamp'));
    if (Number.isNaN(t)) return false;
    const age = now - t;
    // A timestamp in the future is not fresh.
    return age >= 0 && age < ttlSeconds * 1000;
  });
}

/**
 * @param {Event} event - Details about the user and the context in which they are logging in.
 * @param {PostLoginAPI} api - Interface whose methods can be used to change the behavior of the login.
 */
exports.onExecutePostLogin = async (event, api) => {
  const { config, error } = readConfig(own(event, 'secrets'));
  if (error !== undefined) {
    api.access.deny(error); // fail closed
    return;
  }

  if (hasFreshRecord(event, config.factorUrl, config.ttlSeconds)) return;

  if (!api.redirect.canRedirect()) {
    if (!config.skipWhenCannotRedirect) api.access.deny(CANNOT_REDIRECT_MESSAGE);
    return;
  }

  if (config.signed === null) {
    // Auth0 appends its own `state`; nothing else is passed to the page.
    api.redirect.sendUserTo(config.pageUrl);
    return;
  }

  // The nonce ties the verdict to this very login: the server copies it into the
  // verdict token, and only this transaction's metadata holds it.
  const nonce = randomBytes(16).toString('base64url');
  api.transaction.setMetadata(NONCE_METADATA_KEY, nonce);
  // Auth0 adds sub (the user id), iss (the tenant), iat and exp to the payload.
  const session_token = api.redirect.encodeToken({
    secret: config.signed.ctxSecret,
    expiresInSeconds: CTX_EXPIRES_IN_SECONDS,
    payload: { use: CTX_USE, nonce, v: PROTOCOL_VERSION },
  });
  api.redirect.sendUserTo(config.pageUrl, { query: { session_token } });
};

/**
 * @param {Event} event - Details about the user and the context in which they are logging in.
 * @param {PostLoginAPI} api - Interface whose methods can be used to change the behavior of the login.
 */
exports.onContinuePostLogin = async (event, api) => {
  const { config, error } = readConfig(own(event, 'secrets'));
  if (error !== undefined) {
    api.access.deny(error);
    return;
  }

  if (config.signed !== null) {
    const { claims, problem } = verifiedClaims(event, api, config.signed);
    if (problem !== undefined) {
      api.access.deny(problem);
      return;
    }
    // Same rules as the query below, on the signed claims (booleans, not strings).
    const notsmiling = own(claims, 'notsmiling');
    // A pass with a prompt missed cannot come from the verifier; deny it all the same.
    if (notsmiling === true && !promptsMet(own(claims, 'prompts'))) {
      api.access.deny(REASON_MESSAGES.get('prompt_missed'));
      return;
    }
    decide(api, config, notsmiling === true, notsmiling === false, own(claims, 'reason'));
    return;
  }

  const query = own(own(event, 'request'), 'query');
  const notsmiling = own(query, 'notsmiling');
  decide(api, config, notsmiling === 'true', notsmiling === 'false', own(query, 'reason'));
};

/** Today's rules: a pass with no reason records the factor; a known reason denies. */
function decide(api, config, passed, failed, reason) {
  if (passed && reason === undefined) {
    api.authentication.recordMethod(config.factorUrl);
    return;
  }
  if (failed && typeof reason === 'string' && REASON_MESSAGES.has(reason)) {
    api.access.deny(REASON_MESSAGES.get(reason));
    return;
  }
  // Anything missing or unexpected.
  api.access.deny(GENERIC_DENY_MESSAGE);
}

/**
 * The verdict token's claims, or `{ problem }` (a deny message naming the failed
 * check, never a value). Auth0's validateToken checks the HS256 signature, `exp` and
 * that `state` is this login's; everything else is ours to check.
 */
function verifiedClaims(event, api, signed) {
  const request = own(event, 'request');
  if (own(own(request, 'body'), TOKEN_PARAMETER) === undefined &&
      own(own(request, 'query'), TOKEN_PARAMETER) === undefined) {
    // Covers a typed `/continue?state=..&notsmiling=true`.
    return { problem: UNSIGNED_DENY_MESSAGE };
  }

  const nonce = own(own(own(event, 'transaction'), 'metadata'), NONCE_METADATA_KEY);
  // Used once, whatever the outcome: the same verdict cannot complete a second continue.
  api.transaction.setMetadata(NONCE_METADATA_KEY, null);

  let claims;
  for (const secret of signed.verdictSecrets) {
    try {
      claims = api.redirect.validateToken({ secret, tokenParameterName: TOKEN_PARAMETER });
      break;
    } catch (_) {
      // Wrong key, tampered, expired or another login's state: try the next key.
    }
  }
  const fail = (what) => ({ problem: `${UNVERIFIED_MESSAGE_PREFIX}${what}.` });
  if (claims === null || typeof claims !== 'object') return fail('signature, expiry or state');

  if (own(claims, 'v') !== PROTOCOL_VERSION) return fail('version');
  if (own(claims, 'iss') !== signed.issuer) return fail('issuer');
  const tenant = signed.tenant ?? String(own(request, 'hostname') ?? '').toLowerCase();
  if (!audienceIsTenant(own(claims, 'aud'), tenant)) return fail('audience');
  const userId = own(own(event, 'user'), 'user_id');
  if (typeof userId !== 'string' || own(claims, 'sub') !== userId) return fail('user');
  if (typeof nonce !== 'string' || nonce === '' || own(claims, 'nonce') !== nonce) return fail('nonce');
  // A short-lived verdict: the server mints it at the end of the check.
  const iat = own(claims, 'iat');
  const exp = own(claims, 'exp');
  if (typeof iat !== 'number' || typeof exp !== 'number' ||
      !(exp > iat && exp - iat <= VERDICT_MAX_LIFETIME_SECONDS)) return fail('lifetime');
  // The mode the tenant asked for: a verdict without one is from the straight-face rules.
  if ((own(claims, 'mode') ?? 'straight') !== signed.mode) return fail('mode');
  if (!/^\d{1,3}\/\d{1,3}$/.test(String(own(claims, 'prompts')))) return fail('prompts');
  return { claims };
}

/** `"met/total"` with every prompt met. */
function promptsMet(prompts) {
  const m = /^(\d{1,3})\/(\d{1,3})$/.exec(String(prompts));
  return m !== null && Number(m[1]) === Number(m[2]);
}

/**
 * The server copies the ctx token's `iss` into `aud`. Auth0 documents that `iss` as
 * the tenant domain without fixing its spelling, so accept the bare host or an
 * https URL of that host with no path; nothing else.
 */
function audienceIsTenant(aud, tenant) {
  if (typeof aud !== 'string' || tenant === '') return false;
  if (aud.toLowerCase() === tenant) return true;
  const url = httpsUrl(aud);
  return url !== null && url.host === tenant && url.pathname === '/' &&
    url.search === '' && url.hash === '';
}
