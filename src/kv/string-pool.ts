// One copy of the strings many task records hold alike (images, commands, worker ids, reasons, times, error
// messages). A decoded command or snapshot gives every record its own copy of each (24 to 40 bytes apiece), so
// 100,000 records held hundreds of thousands of equal strings. Sharing changes no value: the state machine stays
// deterministic and every answer byte-identical.
import type { TaskSpec } from '../contracts/task-model.js';
import { limits } from '../lib/limits.js';

export class StringPool {
  private readonly strings = new Map<string, string>();

  constructor(private readonly max: number = limits.internedStringsMax) {}

  /** The pool's copy of `s` (`s` itself the first time). Past `max` distinct strings the pool starts over. */
  get(s: string): string {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    if (this.strings.size >= this.max) this.strings.clear();
    this.strings.set(s, s);
    return s;
  }

  /** null and undefined as they are. */
  maybe<T extends string | null | undefined>(s: T): T {
    return (typeof s === 'string' ? this.get(s) : s) as T;
  }

  get size(): number {
    return this.strings.size;
  }
}

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * `spec` (a fresh object: a decoded one, or normaliseSpec's answer, which nothing else holds) with its image,
 * command, env values and other short repeated strings taken from the pool, in place. Its name is left alone.
 */
export function internSpec(spec: TaskSpec, pool: StringPool): TaskSpec {
  const s = spec as Writable<TaskSpec>;
  s.image = pool.get(s.image);
  if (Array.isArray(s.command)) s.command = (s.command as unknown[]).map((a) => (typeof a === 'string' ? pool.get(a) : a)) as string[];
  if (s.env !== undefined && s.env !== null && typeof s.env === 'object') {
    const env = s.env as Record<string, string>;
    for (const k of Object.keys(env)) if (k !== '__proto__' && typeof env[k] === 'string') env[k] = pool.get(env[k]);
  }
  if (Array.isArray(s.constraints)) s.constraints = (s.constraints as unknown[]).map((c) => (typeof c === 'string' ? pool.get(c) : c)) as string[];
  if (typeof s.restartPolicy === 'string') s.restartPolicy = pool.get(s.restartPolicy) as NonNullable<TaskSpec['restartPolicy']>;
  if (typeof s.priority === 'string') s.priority = pool.get(s.priority) as NonNullable<TaskSpec['priority']>;
  if (typeof s.namespace === 'string') s.namespace = pool.get(s.namespace);
  return spec;
}
