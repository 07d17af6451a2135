#!/usr/bin/env node
// Writes `x.br` (brotli 11) and `x.gz` (gzip -9) next to each file given, as tools/package.mjs
// does for the package's assets, so the server sends the page's own files precompressed too
// (server/src/statics.rs; a sibling older than its file is ignored there).
//
//   node tools/precompress.mjs www/index.html www/app.js www/style.css
import { readFile, writeFile } from 'node:fs/promises';
import { brotli11, gzip9 } from './package.mjs';

const files = process.argv.slice(2);
if (!files.length) {
  console.error('usage: node tools/precompress.mjs FILE...');
  process.exit(1);
}
for (const f of files) {
  const buf = await readFile(f);
  await writeFile(`${f}.br`, brotli11(buf, { text: /\.(html|js|css|json|svg|txt)$/.test(f) }));
  await writeFile(`${f}.gz`, gzip9(buf));
}
console.log(`precompressed ${files.length} page files (.br and .gz next to each)`);
