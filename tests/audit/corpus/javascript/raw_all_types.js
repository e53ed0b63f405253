// A parser that reads every content type: its limit covers the stream, so hashing after it is bounded.
const crypto = require('crypto');
const express = require('express');
const app = express();
app.use(express.raw({ type: '*/*', limit: '1mb' }));
app.post('/hook', (req, res) => {
  const hmac = crypto.createHmac('sha256', 'k');
  req.on('data', (chunk) => hmac.update(chunk)); // ok: js-parser-limit-stream-bypass
  req.on('end', () => res.json({ sig: hmac.digest('hex') }));
});
