export const dynamic = 'force-dynamic';

const CHUNKS = 5;
const DELAY_MS = 300;

// GET /admin/api/stream: CHUNKS lines, DELAY_MS apart, each sent as soon as it
// is produced, so a client can see them arrive one by one.
export async function GET() {
  const encoder = new TextEncoder();
  let i = 0;
  const stream = new ReadableStream({
    async pull(controller) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, DELAY_MS));
      controller.enqueue(encoder.encode(`chunk ${i} at ${Date.now()}\n`));
      i++;
      if (i === CHUNKS) controller.close();
    },
  });
  return new Response(stream, {
    headers: {
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-store',
    },
  });
}
