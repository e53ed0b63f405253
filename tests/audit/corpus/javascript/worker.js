// A worker-style fetch handler (Cloudflare, Deno, Bun): the platform allows 100 MB or more.
export default {
  async fetch(request, env) {
    const body = await request.arrayBuffer(); // expect: js-unbounded-body-read
    const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(env.SECRET),
      { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    const signature = hexToBytes(request.headers.get('x-signature') || '');
    const ok = await crypto.subtle.verify('HMAC', key, signature, body);
    return new Response(ok ? 'ok' : 'no', { status: ok ? 200 : 401 });
  },
};

function hexToBytes(hex) {
  return new Uint8Array((hex.match(/../g) || []).map((b) => parseInt(b, 16)));
}
