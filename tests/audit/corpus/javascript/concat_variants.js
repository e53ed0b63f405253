'use strict';
const crypto = require('crypto');
const https = require('https');

function readChunks(req, done) {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk)); // expect: js-unbounded-body-concat
  req.on('end', () => done(Buffer.concat(chunks)));
}

function readBound(request) {
  return new Promise((resolve) => {
    const data = [];
    request.on('data', data.push.bind(data)); // expect: js-unbounded-body-concat
    request.on('end', () => resolve(Buffer.concat(data)));
  });
}

async function readLoop(req) {
  let body = Buffer.alloc(0);
  for await (const chunk of req) {
    body = Buffer.concat([body, chunk]); // expect: js-unbounded-body-concat
  }
  return body;
}

function readCounted(req, res, done) {
  const chunks = [];
  let received = 0;
  req.on('data', (chunk) => {
    received += chunk.length;
    if (received > 1024 * 1024) {
      res.statusCode = 413;
      res.end();
      req.destroy();
      return;
    }
    chunks.push(chunk); // ok: js-unbounded-body-concat
  });
  req.on('end', () => done(Buffer.concat(chunks)));
}

function fetchUpstream(url, done) {
  https.get(url, (res) => {
    let text = '';
    res.on('data', (chunk) => { text += chunk; }); // ok: js-unbounded-body-concat
    res.on('end', () => done(text));
  });
}

function hashStream(req, done) {
  const hmac = crypto.createHmac('sha256', 'k');
  req.on('data', (chunk) => hmac.update(chunk)); // ok: js-unbounded-body-concat
  req.on('end', () => done(hmac.digest('hex')));
}

module.exports = { readChunks, readBound, readLoop, readCounted, fetchUpstream, hashStream };
