// Replays one simulated run exactly: `npm run sim -- --seed N --steps M [--nodes 5] [--profile P] [--schedule JSON]
// [--trace]`. --trace prints every event; two runs of one seed print identical traces.
import { parseArgs } from 'node:util';
import { helpOption, parsedOrExit } from '../support/tool-args.js';
import { isProfileName, type ProfileName, type Schedule } from './schedule.js';
import { runSimulation, SimulationFailure } from './run.js';

const usage = 'usage: npm run sim -- --seed N --steps M [--nodes 3|5|7] [--profile NAME] [--schedule JSON] [--liveness TICKS] [--trace]';

async function main(): Promise<number> {
  const parsed = parsedOrExit(() => parseArgs({
    options: {
      ...helpOption,
      seed: { type: 'string' },
      steps: { type: 'string', default: '200' },
      nodes: { type: 'string', default: '3' },
      profile: { type: 'string', default: 'random' },
      schedule: { type: 'string' },
      liveness: { type: 'string' },
      trace: { type: 'boolean', default: false },
    },
  }), usage);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (values.seed === undefined) {
    console.error(usage);
    return 2;
  }
  const bad = [
    !/^[0-9]+$/.test(values.seed) && `--seed: expected an integer >= 0, got ${values.seed}`,
    !/^[1-9][0-9]*$/.test(values.steps) && `--steps: expected an integer >= 1, got ${values.steps}`,
    !['3', '5', '7'].includes(values.nodes) && `--nodes: expected 3, 5 or 7, got ${values.nodes}`,
    values.liveness !== undefined && !/^[1-9][0-9]*$/.test(values.liveness) && `--liveness: expected an integer >= 1, got ${values.liveness}`,
  ].filter((p): p is string => p !== false);
  if (bad.length > 0) {
    console.error(`${bad.join('\n')}\n${usage}`);
    return 2;
  }
  const profile = values.profile;
  if (profile !== 'random' && !isProfileName(profile)) {
    console.error(`unknown profile ${profile}`);
    return 2;
  }
  const lines: string[] = [];
  const flush = (): void => {
    if (lines.length > 0) process.stdout.write(lines.join('\n') + '\n');
    lines.length = 0;
  };
  const trace = values.trace
    ? (line: string): void => {
        lines.push(line);
        if (lines.length >= 4096) flush();
      }
    : null;
  try {
    const result = await runSimulation({
      seed: Number(values.seed),
      steps: Number(values.steps),
      nodes: Number(values.nodes),
      profile: profile as ProfileName | 'random',
      ...(values.schedule === undefined ? {} : { schedule: JSON.parse(values.schedule) as Schedule }),
      ...(values.liveness === undefined ? {} : { livenessTicksMax: Number(values.liveness) }),
      trace,
    });
    flush();
    console.log(JSON.stringify(result));
    return 0;
  } catch (err) {
    flush();
    console.error(err instanceof SimulationFailure ? err.message : err);
    if (err instanceof SimulationFailure && err.cause instanceof Error && err.cause.stack !== undefined) console.error(err.cause.stack);
    return 1;
  }
}

process.exitCode = await main();
