import { headers } from 'next/headers';

// Rendered per request: it shows what the proxy told the app about the client.
export const dynamic = 'force-dynamic';

export default async function Home() {
  const h = await headers();
  return (
    <main>
      <h1>Admin portal</h1>
      <dl>
        <dt>host</dt>
        <dd id="host">{h.get('host') ?? ''}</dd>
        <dt>x-forwarded-host</dt>
        <dd id="forwarded-host">{h.get('x-forwarded-host') ?? ''}</dd>
        <dt>x-forwarded-proto</dt>
        <dd id="forwarded-proto">{h.get('x-forwarded-proto') ?? ''}</dd>
      </dl>
    </main>
  );
}
