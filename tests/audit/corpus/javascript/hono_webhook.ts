// Hono reads bodies whole and sets no limit unless bodyLimit() is installed.
import { Hono } from 'hono';
import { createHmac } from 'node:crypto';

const app = new Hono();

app.post('/hook', async (c) => {
  const body = await c.req.json(); // expect: js-unbounded-body-read
  const signature = c.req.header('x-signature');
  const mine = createHmac('sha256', 'k').update(JSON.stringify(body)).digest('hex');
  if (signature !== mine) { // expect: js-signature-compare-timing
    return c.text('no', 401);
  }
  return c.text('ok');
});

app.post('/form', async (c) => {
  const form = await c.req.parseBody(); // expect: js-unbounded-body-read
  return c.json(form);
});

export default app;
