/** `faas serve`: runs the gateway in the foreground until SIGINT or SIGTERM. */
import { parseArgs } from 'node:util';
import { loadConfig } from '../../config.js';
import { errorMessage } from '../../errors.js';
import { startGateway } from '../../gateway/server.js';
import { CliError, type Command } from '../command.js';

const HELP = `Usage: faas serve [--host H] [--port P] [--data-dir D] [--heartbeat-ms MS]

Runs the gateway (REST and WebSocket API) with the Docker runtime.

Options:
  --host H          address to listen on (env FAAS_HOST, default 127.0.0.1)
  --port P          port to listen on (env FAAS_PORT, default 8080)
  --data-dir D      where state lives (env FAAS_DATA_DIR, default ./.faas)
  --heartbeat-ms MS interval of WebSocket heartbeat events (env FAAS_HEARTBEAT_MS, default 15000)
`;

export const command: Command = {
  summary: 'run the gateway',
  async run(args) {
    let values;
    try {
      ({ values } = parseArgs({
        args,
        options: {
          host: { type: 'string' },
          port: { type: 'string' },
          'data-dir': { type: 'string' },
          'heartbeat-ms': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      }));
    } catch (err) {
      throw new CliError(`${errorMessage(err)}\n\n${HELP}`);
    }
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    let config;
    try {
      config = loadConfig({ host: values.host, port: values.port, dataDir: values['data-dir'], heartbeatMs: values['heartbeat-ms'] });
    } catch (err) {
      throw new CliError(errorMessage(err));
    }
    // Whoever reads our output may go away (a closed pipe): that must not turn a clean shutdown into a crash.
    for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
    let gateway;
    try {
      gateway = await startGateway({ ...config, logLevel: process.env.FAAS_LOG_LEVEL ? config.logLevel : 'warn' });
    } catch (err) {
      throw new CliError(`cannot start the gateway: ${errorMessage(err)}`, 1);
    }
    const health = await gateway.platform.runtime.health();
    const engine = health.reachable ? health.version : `unreachable (${health.error})`;
    if (gateway.generatedAdminKey) {
      console.log(`faas gateway: generated the admin key (shown this once; only its hash is kept): ${gateway.generatedAdminKey}`);
    }
    // Handlers first, then the line that says we are up: a supervisor may signal us the moment it reads it.
    const stopped = new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        console.log(`faas gateway: ${signal} received, shutting down (persistent sandboxes keep running)`);
        void gateway.close().then(resolve, resolve);
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    console.log(`faas gateway listening on ${gateway.url} (runtime: ${gateway.platform.runtime.name}, ${engine}; data: ${config.dataDir})`);
    await stopped;
    return 0;
  },
};
