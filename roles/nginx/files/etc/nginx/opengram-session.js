// opengram-deploy (roles/nginx): the login session of the password gate.
//
// A browser that passed nginx's basic auth once gets a session cookie signed
// with the host's secret; while the cookie is valid, nginx skips the bcrypt
// check (auth_basic $opengram_auth_realm is "off"), so a page and its assets
// cost one HMAC each instead of one bcrypt verification each.
//
//   __Host-opengram_session=v1.<expires>.<user, base64url>.<mac>
//   mac = HMAC-SHA256(secret, "v1|<version>|<user>|<expires>"), base64url
//
// $opengram_session_secret: 256 random bits, kept root-only on the host.
// $opengram_session_version: a digest of the users file, so that changing or
// removing any password invalidates every session at the next reload.
// $opengram_session_lifetime: seconds a session lasts (the browser then
// logs in again with the credentials it keeps, one bcrypt check).
//
// Written for the njs of Debian 12 (0.7.9) and 13 (0.8.9): no for..of.

import crypto from 'crypto';

const NAME = '__Host-opengram_session';

function mac(r, user, expires) {
    return crypto.createHmac('sha256', r.variables.opengram_session_secret)
        .update('v1|' + r.variables.opengram_session_version + '|' + user + '|' + expires)
        .digest('base64url');
}

// Constant-time comparison of two strings of the MAC's alphabet.
function same(a, b) {
    if (a.length !== b.length) {
        return false;
    }
    let d = 0;
    for (let i = 0; i < a.length; i++) {
        d |= a.charCodeAt(i) ^ b.charCodeAt(i);
    }
    return d === 0;
}

function cookie(r) {
    const parts = (r.variables.http_cookie || '').split(';');
    for (let i = 0; i < parts.length; i++) {
        const kv = parts[i].trim();
        if (kv.startsWith(NAME + '=')) {
            return kv.slice(NAME.length + 1);
        }
    }
    return '';
}

// The user of a valid, unexpired session cookie, or ''.
function sessionUser(r) {
    const p = cookie(r).split('.');
    if (p.length !== 4 || p[0] !== 'v1' || !/^[0-9]{1,12}$/.test(p[1])) {
        return '';
    }
    if (Number(p[1]) <= Date.now() / 1000) {
        return '';
    }
    if (!same(p[3], mac(r, p[2], p[1]))) {
        return '';
    }
    return Buffer.from(p[2], 'base64url').toString();
}

// $opengram_session_valid: "1" for a valid session, else "".
function valid(r) {
    return sessionUser(r) ? '1' : '';
}

// $opengram_login_user (logs): the session's user, else $remote_user (the
// name in the Authorization header, verified unless the answer is 401).
function user(r) {
    return sessionUser(r) || r.variables.remote_user || '';
}

// $opengram_session_cookie (add_header Set-Cookie, sent on 2xx and 3xx
// answers only): a new session for a request of a gated location
// ($opengram_gated) that passed auth_basic, i.e. came without a valid session
// and with a user name; "" otherwise (add_header then adds nothing).
function issue(r) {
    if (r.variables.opengram_gated !== '1' || sessionUser(r)) {
        return '';
    }
    const name = r.variables.remote_user;
    if (!name) {
        return '';
    }
    const life = Number(r.variables.opengram_session_lifetime);
    const expires = String(Math.floor(Date.now() / 1000) + life);
    const u = Buffer.from(name).toString('base64url');
    return NAME + '=v1.' + expires + '.' + u + '.' + mac(r, u, expires)
        + '; Path=/; Max-Age=' + life + '; Secure; HttpOnly; SameSite=Lax';
}

export default {valid, user, issue};
