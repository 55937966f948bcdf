/** @type {import('next').NextConfig} */
const nextConfig = {
  // Gatehouse routes path_prefix /admin to this app and keeps the prefix.
  basePath: '/admin',
};

export default nextConfig;
