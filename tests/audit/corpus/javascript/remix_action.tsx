// A Remix action: the Fetch API request, read whole before the signature is checked.
import { json, type ActionFunctionArgs } from '@remix-run/node';
import { createHmac, timingSafeEqual } from 'node:crypto';

export async function action({ request }: ActionFunctionArgs) {
  const payload = await request.text(); // expect: js-unbounded-body-read
  const expected = createHmac('sha256', process.env.SECRET!).update(payload).digest();
  const given = Buffer.from(request.headers.get('x-signature') ?? '', 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return json({ ok: false }, { status: 401 });
  }
  return json({ ok: true });
}
