// What the Express lab targets share: constant-time comparison and binding to loopback only.
'use strict';
const crypto = require('crypto');

function signatureMatches(expected, given) {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function listen(app) {
  const port = Number(process.env.PORT || 8000);
  const server = app.listen(port, '127.0.0.1');
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // A keep-alive client must not hold the lab open after SIGTERM.
  process.on('SIGTERM', () => setTimeout(() => process.exit(0), 2000).unref());
  return server;
}

module.exports = { listen, signatureMatches };
