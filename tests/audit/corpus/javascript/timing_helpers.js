'use strict';
// A digest returned by a helper function or a method is still a digest.
const crypto = require('crypto');

function signBlob(secret, data) {
  return 'sha256=' + crypto.createHmac('sha256', secret).update(data).digest('hex');
}

const signArrow = (secret, data) => crypto.createHmac('sha1', secret).update(data).digest('base64');

class Verifier {
  constructor(secret) {
    this.secret = secret;
  }

  sign(body) {
    const mac = crypto.createHmac('sha256', this.secret);
    mac.update(body);
    return mac.digest('hex');
  }

  check(body, header) {
    return this.sign(body) === header; // expect: js-signature-compare-timing
  }
}

function viaHelper(req, body) {
  return req.headers['x-hub-signature-256'] !== signBlob('k', body); // expect: js-signature-compare-timing
}

function viaArrow(req, body) {
  const expected = signArrow('k', body);
  return expected == req.get('X-Signature'); // expect: js-signature-compare-timing
}

function hashOnly(body, etag) {
  const sum = crypto.createHash('sha256').update(body).digest('hex');
  return sum === etag; // ok: js-signature-compare-timing
}

function voidCompare(u) {
  return u.ref !== void 0; // ok: js-signature-compare-timing
}

module.exports = { Verifier, viaHelper, viaArrow, hashOnly, voidCompare };

async function webCrypto(key, payload, given) {
  const mac = await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(payload));
  const expected = btoa(String.fromCharCode(...new Uint8Array(mac)));
  return given === expected; // expect: js-signature-compare-timing
}

module.exports.webCrypto = webCrypto;
