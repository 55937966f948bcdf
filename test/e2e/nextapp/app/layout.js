import './globals.css';

export const metadata = { title: 'Gatehouse e2e admin portal' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
