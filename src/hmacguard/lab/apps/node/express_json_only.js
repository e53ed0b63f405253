// A receiver that takes only JSON, read raw under a 1 MiB cap and verified byte for byte; any other
// content type is answered 403 before a byte of the body is read. A body over the cap is refused with
// 413 and Connection: close, never drained: before reading when its Content-Length says so, at the cap
// when it is chunked. (express.raw({limit}) would read the rest of a refused body before its 413:
// body-parser drains it to keep the connection, which is late rejection.) No bypass: a type refused
// before reading is not one whose size limit differs. A negative for content-type-bypass; a delivery
// is processed once.
'use strict';
const crypto = require('crypto');
const express = require('express');
const { listen, signatureMatches } = require('./common');

const LIMIT = 1024 * 1024;
const app = express();
const seen = new Set(); // processed deliveries, by signature (bounded below)

function tooLarge(res) {
  res.set('Connection', 'close').status(413).json({ error: 'body too large' });
}

function handle(req, res, body) {
  const signature = req.get('X-Hub-Signature-256');
  const hmac = crypto.createHmac('sha256', process.env.HMACGUARD_LAB_SECRET);
  hmac.update(body);
  if (!signatureMatches('sha256=' + hmac.digest('hex'), signature)) {
    res.status(401).json({ error: 'signature mismatch' });
    return;
  }
  if (seen.has(signature)) {
    res.status(409).json({ error: 'already processed' });
    return;
  }
  seen.add(signature);
  if (seen.size > 100000) seen.delete(seen.values().next().value);
  res.json({ ok: true });
}

app.post('/webhook', (req, res) => {
  if (!req.is('application/json')) {
    res.status(403).json({ error: 'JSON only' });
    return;
  }
  if (Number(req.get('content-length') || 0) > LIMIT) {
    tooLarge(res);
    return;
  }
  const chunks = [];
  let size = 0;
  let answered = false;
  req.on('data', (chunk) => {
    if (answered) return;
    size += chunk.length;
    if (size > LIMIT) {
      answered = true;
      req.pause();
      tooLarge(res);
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (answered) return;
    answered = true;
    handle(req, res, Buffer.concat(chunks));
  });
  req.on('error', () => {
    if (answered) return;
    answered = true;
    res.status(400).json({ error: 'invalid request' });
  });
});

listen(app);
