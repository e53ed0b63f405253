'use strict';
// raw-body has no default limit; collectors buffer whatever is piped into them.
const crypto = require('crypto');
const getRawBody = require('raw-body');
const concat = require('concat-stream');
const { text } = require('node:stream/consumers');

async function unlimited(req, res) {
  const body = await getRawBody(req); // expect: js-unbounded-body-read
  return verify(body, req.headers['x-signature']);
}

async function encodingOnly(req) {
  const body = await getRawBody(req, 'utf8'); // expect: js-unbounded-body-read
  return verify(body, req.headers['x-signature']);
}

async function limited(req) {
  const body = await getRawBody(req, { limit: '1mb', length: req.headers['content-length'] }); // ok: js-unbounded-body-read
  return verify(body, req.headers['x-signature']);
}

function collected(req, res) {
  req.pipe(concat((body) => res.end(String(verify(body, req.headers['x-signature']))))); // expect: js-unbounded-body-read
}

async function consumed(req) {
  const body = await text(req); // expect: js-unbounded-body-read
  return verify(body, req.headers['x-signature']);
}

function streamedIntoHmac(req, res) {
  const hmac = crypto.createHmac('sha256', 'k');
  req.pipe(hmac); // ok: js-unbounded-body-read
  req.on('end', () => res.end(hmac.digest('hex')));
}

function verify(body, signature) {
  const expected = crypto.createHmac('sha256', 'k').update(body).digest();
  const given = Buffer.from(String(signature || ''), 'hex');
  return expected.length === given.length && crypto.timingSafeEqual(expected, given);
}

module.exports = { unlimited, encodingOnly, limited, collected, consumed, streamedIntoHmac };
