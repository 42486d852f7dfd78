import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "happy-dom",
    // The partner's page: a different origin from Apertur's (test/helpers.ts APERTUR).
    environmentOptions: { happyDOM: { url: "http://partner.localhost:3000/" } },
    include: ["test/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
