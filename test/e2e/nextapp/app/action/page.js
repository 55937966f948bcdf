import { revalidatePath } from 'next/cache';

export const dynamic = 'force-dynamic';

// Process-wide, so the action and the page render see the same list whatever
// bundle each runs in.
const saved = (globalThis.__gatehouseE2ESaved ??= []);

async function save(formData) {
  'use server';
  saved.push(String(formData.get('message') ?? ''));
  // No redirect(): with basePath, Next sends a no-JavaScript (MPA) action's
  // redirect as a Location without the basePath (vercel/next.js#85462), which
  // would leave the proxy's /admin prefix. Revalidating makes the POST answer
  // with the freshly rendered page instead.
  revalidatePath('/action');
}

export default function ActionPage() {
  return (
    <main>
      <h1>Server Action</h1>
      <form action={save}>
        <input name="message" />
        <button type="submit">Save</button>
      </form>
      <ul id="saved">
        {saved.map((m, i) => (
          <li key={i}>{m}</li>
        ))}
      </ul>
    </main>
  );
}
