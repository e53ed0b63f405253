// Seed 000's Express "fix", as the article wrote it: a 1 MB JSON parser limit beside a streaming HMAC.
// Flaws: any non-JSON content type skips the parser and its limit (the stream is hashed unbounded),
// and for JSON the parser consumes the stream first, so 'end' has already fired and no answer comes.
'use strict';
const crypto = require('crypto');
const express = require('express');
const { listen, signatureMatches } = require('./common');

const app = express();
app.use(express.json({ limit: '1mb' }));

app.post('/webhook', (req, res) => {
  const hmac = crypto.createHmac('sha256', process.env.HMACGUARD_LAB_SECRET);
  req.on('data', (chunk) => hmac.update(chunk));
  req.on('end', () => {
    const signature = 'sha256=' + hmac.digest('hex');
    if (!signatureMatches(signature, req.get('X-Hub-Signature-256'))) {
      res.status(401).json({ error: 'signature mismatch' });
      return;
    }
    res.json({ ok: true, signature });
  });
  req.on('error', () => {
    res.status(400).json({ error: 'Invalid request' });
  });
});

listen(app);
