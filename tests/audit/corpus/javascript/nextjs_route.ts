// A Next.js App Router webhook route: route handlers have no body limit of their own.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { NextRequest, NextResponse } from 'next/server';

const MAX = 1024 * 1024;

export async function POST(request: NextRequest) {
  const raw = await request.text(); // expect: js-unbounded-body-read
  const given = request.headers.get('x-signature') ?? '';
  const expected = createHmac('sha256', process.env.SECRET!).update(raw).digest('hex');
  const ok = given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
  return ok ? NextResponse.json({ ok: true }) : new NextResponse(null, { status: 401 });
}

export async function PUT(request: NextRequest) {
  const contentLength = request.headers.get('content-length');
  if (contentLength && Number(contentLength) > MAX) { // expect: js-content-length-guard-bypass
    return new NextResponse(null, { status: 413 });
  }
  const raw = await request.arrayBuffer(); // expect: js-unbounded-body-read
  const sig = createHmac('sha256', process.env.SECRET!).update(Buffer.from(raw)).digest('hex');
  return NextResponse.json({ sig });
}

export async function PATCH(request: NextRequest) {
  const length = request.headers.get('content-length');
  if (!length || Number(length) > MAX) { // ok: js-content-length-guard-bypass
    return new NextResponse(null, { status: 413 });
  }
  const raw = await request.text(); // ok: js-unbounded-body-read
  const sig = createHmac('sha256', process.env.SECRET!).update(raw).digest('hex');
  return NextResponse.json({ sig });
}

export async function GET(request: NextRequest) {
  const upstream = await fetch('http://127.0.0.1:9/x');
  const data = await upstream.json(); // ok: js-unbounded-body-read
  return NextResponse.json(data);
}

async function readForm(request: NextRequest) {
  return await request.formData(); // expect: js-unbounded-body-read
}

export async function DELETE(request: NextRequest) {
  const size = request.headers.get('content-length');
  if (size && Number(size) > MAX) { // expect: js-content-length-guard-bypass
    return new NextResponse(null, { status: 413 });
  }
  const form = await readForm(request);
  return NextResponse.json({ fields: [...form.keys()].length });
}
