// A JSON parser beside a streaming HMAC that counts bytes and stops: bounded.
const crypto = require('crypto');
const express = require('express');
const app = express();
app.use(express.json({ limit: '1mb' }));
app.post('/hook', (req, res) => {
  const hmac = crypto.createHmac('sha256', 'k');
  let seen = 0;
  req.on('data', (chunk) => { // ok: js-parser-limit-stream-bypass
    seen += chunk.length;
    if (seen > 1048576) { req.destroy(); return; }
    hmac.update(chunk);
  });
  req.on('end', () => res.json({ sig: hmac.digest('hex') }));
});
