#!/bin/sh
':' //; exec node --initial-old-space-size=96 "$0" "$@"
// Read by sh first (the line above starts Node with the gateway's heap flag), then by Node (a string and a comment).
// `env -S node …` in the shebang would do the same but busybox's env (Alpine) has no -S.
// --initial-old-space-size: with V8's default the gateway's small heap (~20 MB live) made every few MiB of stream
// buffers (engine archives, output) trigger a full collection: ~15 per 100 MiB checkpoint, ~30% of its CPU. 96 MB
// defers them (1-2 per 100 MiB) at a bounded cost in resident memory. Run it as `bin/faas.js` (or `npx faas`), not
// `node bin/faas.js`, to keep the flag; `npm run bench` passes the same flag to its in-process gateways.
// The `faas` command: compiled TypeScript lives in dist/ (built by the README set-up, `npm run build`).
import('../dist/src/cli/main.js')
  .then((cli) => cli.main(process.argv.slice(2)))
  .then((code) => { if (typeof code === 'number') process.exitCode = code; })
  .catch((err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli')) {
      console.error('faas: the platform is not built yet; run `npm run build` (or the README set-up) first.');
    } else {
      console.error(`faas: ${err && err.message ? err.message : err}`);
    }
    process.exitCode = 1;
  });
