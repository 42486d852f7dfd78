// Builds the <script> bundle committed under Django's static folder (so `make run` needs no Node) and the
// ES module package in dist/.
import { build } from "esbuild";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const { version } = JSON.parse(readFileSync(resolve(root, "package.json"), "utf8"));
const staticDir = resolve(root, "../../apertur/static/sdk");
mkdirSync(staticDir, { recursive: true });

const banner = { js: `/*! aptr-connect v${version} | Apertur | MIT */` };

await build({
  entryPoints: [resolve(root, "src/global.ts")],
  outfile: resolve(staticDir, "aptr-connect.js"),
  bundle: true,
  minify: true,
  format: "iife",
  globalName: "AptrConnect",
  target: ["es2019"],
  legalComments: "inline",
  banner,
  logLevel: "warning",
});

await build({
  entryPoints: ["index", "react", "vue"].map((n) => resolve(root, `src/${n}.ts`)),
  outdir: resolve(root, "dist"),
  bundle: true,
  format: "esm",
  target: ["es2019"],
  splitting: true,
  external: ["react", "react-dom", "vue"],
  banner,
  logLevel: "warning",
});

// docs/sdk.md gives the pinned URL and its Subresource Integrity hash between markers; keep them true.
import { createHash } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";

const bundleBytes = readFileSync(resolve(staticDir, "aptr-connect.js"));

// Every released version stays servable, byte for byte, at /sdk/v<version>/aptr-connect.js (partners pin it with
// an integrity hash): the build writes this version's copy once, and refuses to change a released one.
const pinnedDir = resolve(staticDir, `v${version}`);
const pinnedPath = resolve(pinnedDir, "aptr-connect.js");
if (existsSync(pinnedPath)) {
  if (!readFileSync(pinnedPath).equals(bundleBytes)) {
    console.error(
      `aptr-connect v${version} was released with other content (${pinnedPath}): ` +
        "a released version never changes. Bump the version in sdk/js/package.json.",
    );
    process.exit(1);
  }
} else {
  mkdirSync(pinnedDir, { recursive: true });
  writeFileSync(pinnedPath, bundleBytes);
}
const integrity = "sha384-" + createHash("sha384").update(bundleBytes).digest("base64");
const docPath = resolve(root, "../../docs/sdk.md");
if (existsSync(docPath)) {
  const doc = readFileSync(docPath, "utf8");
  const snippet =
    "<!-- sri:start -->\n```html\n" +
    `<script src="https://apertur.ca/sdk/v${version}/aptr-connect.js"\n` +
    `        integrity="${integrity}"\n` +
    `        crossorigin="anonymous"></script>\n` +
    "```\n<!-- sri:end -->";
  const updated = doc.replace(/<!-- sri:start -->[\s\S]*?<!-- sri:end -->/, snippet);
  if (updated !== doc) writeFileSync(docPath, updated);
}
