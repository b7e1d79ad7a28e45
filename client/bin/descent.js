#!/usr/bin/env node
// The `descent` command. The CLI is TypeScript, which Node.js runs directly from 22.18 / 23.6 on
// (type stripping). `npx descent` runs this file with the project's own Node 24 (the `node` dev
// dependency is first on npx's PATH); an older Node hands over to that one when it is installed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

if (process.features.typescript) {
  const { run } = await import('../cli/run.ts');
  await run();
} else {
  const projectNode = fileURLToPath(new URL('../../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(projectNode)) {
    process.stderr.write(
      `descent needs Node.js 22.18 or newer (this is ${process.version}); run \`npm ci\` in the project to get Node 24.\n`,
    );
    process.exit(2);
  }
  const cli = fileURLToPath(new URL('../cli/run.ts', import.meta.url));
  const child = spawnSync(projectNode, [cli, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(child.status ?? 3);
}
