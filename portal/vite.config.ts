/// <reference types="vitest/config" />
// The portal is built into the Python package (src/nubes/portal_dist), so that
// `nubes serve` and `nubes api` serve it at `/` and a wheel carries it.
import { fileURLToPath, URL } from "node:url";
import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vite";

const api = process.env.NUBES_API ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [vue()],
  resolve: {
    alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) },
  },
  build: {
    outDir: fileURLToPath(new URL("../src/nubes/portal_dist", import.meta.url)),
    emptyOutDir: true,
  },
  server: {
    // `npm run dev`: the API of a running `nubes serve` answers beside Vite.
    proxy: {
      "/v1": api,
      "/health": api,
    },
  },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.ts"],
    restoreMocks: true,
  },
});
