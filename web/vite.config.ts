import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// The server serves dist/ at `/`; assets are referenced from the root.
export default defineConfig({
  base: '/',
  plugins: [vue()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // No source maps in the package: the sources are in the repository.
    sourcemap: false,
  },
  server: {
    // `npm run dev` against a `tidings serve` on the default port.
    proxy: {
      '/api': 'http://127.0.0.1:8081',
      '/ws': { target: 'ws://127.0.0.1:8081', ws: true },
    },
  },
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node',
  },
})
