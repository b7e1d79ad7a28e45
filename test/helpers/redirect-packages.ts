/**
 * `node --import ./test/helpers/redirect-packages.ts`: resolves the package names in the JSON object
 * `DESCENT_TEST_REDIRECTS` (name → file URL) to those files, so that a child process loads a
 * modified copy of a package (tfjs-node without its addon) while the real one stays in place for the
 * other tests running at the same time.
 */
import { registerHooks } from 'node:module';

const redirects = JSON.parse(process.env.DESCENT_TEST_REDIRECTS ?? '{}') as Record<string, string>;

registerHooks({
  resolve(specifier, context, nextResolve) {
    const url = redirects[specifier];
    return url ? { url, format: 'commonjs', shortCircuit: true } : nextResolve(specifier, context);
  },
});
