export const dynamic = 'force-dynamic';

// GET /admin/api/hello. Also reports the x-middleware-subrequest header it
// received, so the test can prove the proxy strips it.
export async function GET(request) {
  return Response.json({
    message: 'hello from next',
    subrequest: request.headers.get('x-middleware-subrequest'),
  });
}
