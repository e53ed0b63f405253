// Seed 000's Express "fix", as the article wrote it: a JSON parser limit beside a streaming HMAC.
const crypto = require('crypto');
const express = require('express');
const app = express();
// 1. Limit raw body size at the middleware level
app.use(express.json({ limit: '1mb' })); // Rejects >1MB with 413 // ok: js-body-parser-limit
app.post('/sign', (req, res) => {
// 2. Use streaming HMAC to avoid buffering entire body in user-space
const hmac = crypto.createHmac('sha256', process.env.SECRET_KEY);
req.on('data', chunk => hmac.update(chunk)); // expect: js-parser-limit-stream-bypass
req.on('end', () => {
const signature = hmac.digest('hex');
res.json({ signature });
// 3. Explicit cleanup (though Node's GC handles most, this helps in long-lived processes)
hmac.destroy?.(); // If using a library that supports it
});
req.on('error', (err) => {
res.status(400).json({ error: 'Invalid request' });
});
});
