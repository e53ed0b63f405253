const express = require('express');
const bodyParser = require('body-parser');
const getRawBody = require('raw-body');

const app = express();
app.use('/a', express.json({ limit: Infinity })); // expect: js-body-parser-limit
app.use('/b', bodyParser.raw({ type: 'application/octet-stream', limit: '50mb' })); // expect: js-body-parser-limit
app.use('/c', express.text({ limit: '1mb' })); // ok: js-body-parser-limit
app.use('/d', express.urlencoded({ extended: false })); // ok: js-body-parser-limit
app.use('/e', express.raw({ limit: 10 * 1024 * 1024 })); // ok: js-body-parser-limit
app.use('/f', express.json({ limit: 100 * 1024 * 1024 })); // expect: js-body-parser-limit

app.post('/raw', async (req, res) => {
  const buf = await getRawBody(req, { length: req.headers['content-length'], limit: '1gb' }); // expect: js-body-parser-limit
  res.json({ bytes: buf.length });
});
