// The same Hono route behind bodyLimit(): bounded.
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { createHmac, timingSafeEqual } from 'node:crypto';

const app = new Hono();
app.use('/hook', bodyLimit({ maxSize: 1024 * 1024 }));

app.post('/hook', async (c) => {
  const raw = await c.req.text(); // ok: js-unbounded-body-read
  const mine = createHmac('sha256', 'k').update(raw).digest();
  const theirs = Buffer.from(c.req.header('x-signature') ?? '', 'hex');
  return mine.length === theirs.length && timingSafeEqual(mine, theirs) ? c.text('ok') : c.text('no', 401);
});

export default app;
