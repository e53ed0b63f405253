// Seed 000's Express endpoint: `body += chunk` buffers the whole payload as a string, no limit.
'use strict';
const crypto = require('crypto');
const express = require('express');
const { listen, signatureMatches } = require('./common');

const app = express();

app.post('/webhook', (req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; }); // the flaw: unbounded string concatenation
  req.on('end', () => {
    const hmac = crypto.createHmac('sha256', process.env.HMACGUARD_LAB_SECRET);
    hmac.update(body);
    const signature = 'sha256=' + hmac.digest('hex');
    if (!signatureMatches(signature, req.get('X-Hub-Signature-256'))) {
      res.status(401).json({ error: 'signature mismatch' });
      return;
    }
    res.json({ ok: true, signature });
  });
});

listen(app);
