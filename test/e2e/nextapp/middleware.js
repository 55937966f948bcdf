import { NextResponse } from 'next/server';

// Marks every response it handles, so the test can tell that middleware ran.
export function middleware() {
  const res = NextResponse.next();
  res.headers.set('x-e2e-middleware', 'ran');
  return res;
}
