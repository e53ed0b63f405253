// TypeScript: the same flaw with types.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHmac } from 'node:crypto';

export function handle(req: IncomingMessage, res: ServerResponse): void {
  let payload: string = '';
  req.on('data', (chunk: Buffer) => { payload += chunk.toString('utf8'); }); // expect: js-unbounded-body-concat
  req.on('end', () => {
    const signature: string = createHmac('sha256', process.env.SECRET as string).update(payload).digest('hex');
    res.end(signature);
  });
}
