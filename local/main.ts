/** `npm start`: the whole service on this machine, no AWS account needed. */
import { resolve } from 'node:path';
import { ENV, intEnv } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { startLocalStack } from './stack.ts';

const log = createLogger({ component: 'local' });
const dataDir = resolve(process.env[ENV.dataDir] || '.descent');
const port = intEnv(ENV.port, 8080, { min: 0, max: 65_535 });
const workers = intEnv(ENV.workers, 1, { min: 0, max: 64 });

const stack = await startLocalStack({
  dataDir,
  port,
  workers,
  maxAttempts: intEnv(ENV.maxAttempts, 3, { min: 1, max: 1000 }),
  ...(process.env[ENV.token] ? { token: process.env[ENV.token] } : {}),
  log,
});

process.stdout.write(`
descent is running (${workers} worker${workers === 1 ? '' : 's'}, data in ${dataDir})

  URL:        ${stack.url}
  Token:      ${stack.token}
  Dashboard:  ${stack.url}/#token=${stack.token}

  export DESCENT_URL=${stack.url} DESCENT_TOKEN=${stack.token}
  curl -H "Authorization: Bearer $DESCENT_TOKEN" $DESCENT_URL/jobs

Press Ctrl-C to stop; queued and running jobs resume on the next start.
`);

let signals = 0;
const shutdown = (signal: string) => {
  signals++;
  if (signals > 1) process.exit(130);
  log.info('stopping', { signal });
  stack.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      log.error('stop failed', { error: String(error) });
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
