const crypto = require('crypto');

function check(req, body) {
  const given = req.headers['x-hub-signature-256'];
  const expected = 'sha256=' + crypto.createHmac('sha256', process.env.SECRET).update(body).digest('hex');
  if (expected !== given) { // expect: js-signature-compare-timing
    return false;
  }
  return true;
}

function checkInline(req, body) {
  return crypto.createHmac('sha1', 'k').update(body).digest('hex') == req.get('X-Signature'); // expect: js-signature-compare-timing
}

function checkObject(req, body) {
  const mac = crypto.createHmac('sha256', 'k');
  mac.update(body);
  const digest = mac.digest('base64');
  return digest === req.headers['x-signature']; // expect: js-signature-compare-timing
}

function checkSafe(req, body) {
  const expected = Buffer.from(crypto.createHmac('sha256', 'k').update(body).digest('hex'));
  const given = Buffer.from(String(req.headers['x-signature'] || ''));
  return expected.length === given.length && crypto.timingSafeEqual(expected, given); // ok: js-signature-compare-timing
}

function etagMatches(req, body) {
  const etag = crypto.createHash('sha1').update(body).digest('base64');
  return req.headers['if-none-match'] === etag; // ok: js-signature-compare-timing
}

function emptyDigest(body) {
  const d = crypto.createHmac('sha256', 'k').update(body).digest('hex');
  return d === ''; // ok: js-signature-compare-timing
}

module.exports = { check, checkInline, checkObject, checkSafe, etagMatches, emptyDigest };
