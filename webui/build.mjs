// Builds the UI into ../src/sitewatch/web/static (committed, so users need neither Node nor a CDN).
import { build } from "esbuild";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { feature } from "topojson-client";

const out = new URL("../src/sitewatch/web/static/", import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out + "images", { recursive: true });

await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  outfile: out + "app.js",
  legalComments: "linked",
  logLevel: "info",
});
await build({
  entryPoints: ["src/app.css"],
  bundle: true,
  minify: true,
  outfile: out + "app.css",
  loader: { ".png": "file", ".svg": "file" },
  assetNames: "images/[name]",
  logLevel: "info",
});
cpSync("src/index.html", out + "index.html");

// Country outlines (Natural Earth 1:110m via world-atlas, public domain / ISC) as GeoJSON.
const topo = JSON.parse(readFileSync("node_modules/world-atlas/countries-110m.json", "utf8"));
const round = (c) => (typeof c[0] === "number" ? c.map((v) => Math.round(v * 1000) / 1000) : c.map(round));
const fc = feature(topo, topo.objects.countries);
for (const f of fc.features) {
  f.geometry.coordinates = round(f.geometry.coordinates);
  f.properties = { name: f.properties.name };
}
writeFileSync(out + "countries.geojson", JSON.stringify(fc));
writeFileSync(
  out + "NOTICE.txt",
  "Built from webui/ (npm run build). Bundles Leaflet (BSD-2-Clause, (c) Volodymyr Agafonkin, CloudMade),\n" +
    "topojson-client (ISC, Mike Bostock) and Natural Earth country outlines via world-atlas (ISC; data public domain).\n",
);
