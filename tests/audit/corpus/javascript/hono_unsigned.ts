// Hono without a signature: still unbounded, reported with medium severity.
import { Hono } from 'hono';

const app = new Hono();

app.post('/relay/:id', async (c) => {
  const payload = await c.req.json(); // expect: js-unbounded-body-read
  return c.json({ id: c.req.param('id'), size: JSON.stringify(payload).length });
});

export default app;
