#!/usr/bin/env node
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
