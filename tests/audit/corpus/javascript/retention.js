'use strict';
// Request data kept in module-level containers: one entry per request, never released.
const express = require('express');

const deliveries = [];
const bySignature = new Map();
const recent = [];
const ids = new Set();
const app = express();

app.post('/hook', express.raw({ type: '*/*', limit: '100kb' }), (req, res) => {
  deliveries.push(req.body); // expect: js-body-retained-global
  const signature = req.headers['x-hub-signature-256'];
  bySignature.set(signature, { body: req.body, at: Date.now() }); // expect: js-body-retained-global
  ids.add(req.body.toString('utf8').length); // ok: js-body-retained-global
  recent.push(req.body); // ok: js-body-retained-global
  if (recent.length > 100) recent.shift();
  res.sendStatus(204);
});

app.post('/stream', (req, res) => {
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > 1024 * 1024) return req.destroy();
    chunks.push(chunk);
  });
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    deliveries.unshift({ raw, headers: req.headers }); // expect: js-body-retained-global
    res.end();
  });
});

deliveries.push({ boot: true }); // ok: js-body-retained-global

module.exports = app;
