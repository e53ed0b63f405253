'use strict';
// node:http with a Content-Length-only guard: NaN > MAX is false for a chunked request.
const http = require('http');
const crypto = require('crypto');

const MAX = 1024 * 1024;

http.createServer((req, res) => {
  if (parseInt(req.headers['content-length'], 10) > MAX) { // expect: js-content-length-guard-bypass
    res.statusCode = 413;
    return res.end();
  }
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk)); // expect: js-unbounded-body-concat
  req.on('end', () => {
    const mac = crypto.createHmac('sha256', 'k').update(Buffer.concat(chunks)).digest('hex');
    res.end(mac);
  });
}).listen(0, '127.0.0.1');
