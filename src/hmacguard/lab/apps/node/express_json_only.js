// A receiver that takes only JSON, read raw under a 1 MB cap and verified byte for byte; any other
// content type is answered 403 before a byte of the body is read. No bypass: a type refused before
// reading is not one whose size limit differs. A negative for content-type-bypass (and a delivery is
// processed once).
'use strict';
const crypto = require('crypto');
const express = require('express');
const { listen, signatureMatches } = require('./common');

const app = express();
const seen = new Set(); // processed deliveries, by signature (bounded below)
app.use(express.raw({ type: 'application/json', limit: '1mb' }));

app.post('/webhook', (req, res) => {
  if (!req.is('application/json')) {
    res.status(403).json({ error: 'JSON only' });
    return;
  }
  const hmac = crypto.createHmac('sha256', process.env.HMACGUARD_LAB_SECRET);
  hmac.update(Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0));
  if (!signatureMatches('sha256=' + hmac.digest('hex'), req.get('X-Hub-Signature-256'))) {
    res.status(401).json({ error: 'signature mismatch' });
    return;
  }
  const signature = req.get('X-Hub-Signature-256');
  if (seen.has(signature)) {
    res.status(409).json({ error: 'already processed' });
    return;
  }
  seen.add(signature);
  if (seen.size > 100000) seen.delete(seen.values().next().value);
  res.json({ ok: true });
});

listen(app);
