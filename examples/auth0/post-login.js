/**
 * smile-factor: Auth0 post-login Action (Login / Post Login trigger).
 *
 * TRUST MODEL, PLAINLY: this is a playful check, not a security control.
 * The verdict comes back as a query parameter (`notsmiling=true`) on Auth0's
 * `/continue` URL, and the user's browser controls that URL: anyone can type
 * `notsmiling=true` by hand and skip the page. Auth0 itself advises against
 * trusting URL parameters that are not signed. Do not use this factor to protect
 * anything, until the verdict is signed: the path there is Auth0's
 * `api.redirect.encodeToken` (an HS256 token sent to the page) and
 * `api.redirect.validateToken` (checking a signed token sent back, with the same
 * `state`), which needs a server side to hold the secret; a static page cannot.
 *
 * Flow:
 *   onExecutePostLogin  - skip if our factor was completed recently in this session;
 *                         otherwise send the user to the smile page (Auth0 appends
 *                         its own `state`).
 *   onContinuePostLogin - the page sent the browser to
 *                         https://{tenant}/continue?state=..&notsmiling=true|false[&reason=..];
 *                         `notsmiling=true` (and no reason) records the factor in the
 *                         session, anything else denies the login.
 *
 * Secrets (Action -> Secrets):
 *   SMILE_PAGE_URL              required; https URL of the hosted page (fail closed if not)
 *   SMILE_FACTOR_URL            optional; identifier recorded for the factor
 *                               (default: the page URL's origin + path)
 *   SMILE_TTL_SECONDS           optional; how long a completed check stays valid in the
 *                               session (default 3600, 0 = every login, max 31536000)
 *   SMILE_WHEN_CANNOT_REDIRECT  optional; `deny` (default) or `skip`, for flows that cannot
 *                               redirect (refresh token, password grant, prompt=none)
 */

'use strict';

const DEFAULT_TTL_SECONDS = 3600;
const MAX_TTL_SECONDS = 365 * 24 * 3600;

const CONFIG_MESSAGE_PREFIX = 'The smile check is not configured correctly: ';
const CANNOT_REDIRECT_MESSAGE =
  'The smile check needs an interactive login; it cannot run in this flow.';
const GENERIC_DENY_MESSAGE = 'The smile check did not complete.';

/** Deny messages per `reason` sent by the page (with `notsmiling=false`). */
const REASON_MESSAGES = new Map([
  ['smiled', 'You smiled.'],
  ['no_face', 'No face was visible.'],
  ['interrupted', 'The check was interrupted.'],
  ['camera_denied', 'Camera access was denied.'],
  ['camera_unavailable', 'No camera was available.'],
  ['error', 'The smile check failed to load.'],
]);

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

  return {
    config: {
      pageUrl: page.href,
      factorUrl,
      ttlSeconds,
      skipWhenCannotRedirect: when === 'skip',
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

  // Auth0 appends its own `state`; nothing else is passed to the page.
  api.redirect.sendUserTo(config.pageUrl);
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

  const query = own(own(event, 'request'), 'query');
  const notsmiling = own(query, 'notsmiling');
  const reason = own(query, 'reason');

  // Passed: exactly `notsmiling=true`, and no reason at all.
  if (notsmiling === 'true' && reason === undefined) {
    api.authentication.recordMethod(config.factorUrl);
    return;
  }

  // Failed with a known reason: exactly `notsmiling=false&reason=<known>`.
  if (notsmiling === 'false' && typeof reason === 'string' && REASON_MESSAGES.has(reason)) {
    api.access.deny(REASON_MESSAGES.get(reason));
    return;
  }

  // Anything missing or unexpected.
  api.access.deny(GENERIC_DENY_MESSAGE);
};
