// Copies GraphiQL's browser bundles from node_modules (installed by `npm ci --prefix graphiql` from the
// pinned package-lock.json) into gateway/static/graphiql/, where the gateway serves them at
// /graphql/assets/<name>. Nothing else: no bundler, no transformation, so every file keeps the
// subresource-integrity hash pinned in gateway/http/graphiql/assets.py (which checks it before use).
//
//   node graphiql/build.mjs [output directory]     (default: gateway/static/graphiql beside this folder)
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "..", "gateway", "static", "graphiql"));
const modules = join(here, "node_modules");

// [npm package, file inside it, name it is served under (with the installed version)].
// Keep in step with ASSETS in gateway/http/graphiql/assets.py.
const FILES = [
  ["graphiql", "graphiql.min.css", (v) => `graphiql-${v}.min.css`],
  ["@graphiql/plugin-explorer", "dist/style.css", (v) => `plugin-explorer-${v}.css`],
  ["react", "umd/react.production.min.js", (v) => `react-${v}.production.min.js`],
  ["react-dom", "umd/react-dom.production.min.js", (v) => `react-dom-${v}.production.min.js`],
  ["graphiql", "graphiql.min.js", (v) => `graphiql-${v}.min.js`],
  ["@graphiql/plugin-explorer", "dist/index.umd.js", (v) => `plugin-explorer-${v}.umd.js`],
];

if (!existsSync(modules)) {
  console.error(`${modules} is missing: run \`npm ci --prefix ${here}\` first`);
  process.exit(1);
}

// Start from an empty folder (no stale versions left behind), but never wipe a folder that is not ours.
if (existsSync(out) && readdirSync(out).length > 0 && !existsSync(join(out, "manifest.json"))) {
  console.error(`${out} is not empty and holds no manifest.json: refusing to replace it`);
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const manifest = [];
const licenses = new Map();
for (const [pkg, file, nameFor] of FILES) {
  const root = join(modules, ...pkg.split("/"));
  const { version, license } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const name = nameFor(version);
  copyFileSync(join(root, file), join(out, name));
  const integrity = "sha384-" + createHash("sha384").update(readFileSync(join(out, name))).digest("base64");
  manifest.push({ name, package: pkg, version, file, integrity });
  const licenseFile = readdirSync(root).find((f) => /^licen[cs]e/i.test(f));
  if (!licenses.has(pkg)) {
    licenses.set(pkg, `${pkg}@${version} (${license})\n\n` +
      (licenseFile ? readFileSync(join(root, licenseFile), "utf8").trim() : "(no license file in the package)"));
  }
}

// Third-party notices travel with the bundles (all MIT).
writeFileSync(join(out, "THIRD-PARTY-LICENSES.txt"), [...licenses.values()].join("\n\n" + "-".repeat(72) + "\n\n") + "\n");
writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`GraphiQL assets: ${manifest.map((m) => m.name).join(", ")} -> ${out}`);
