// What each namespace holds, kept by the task store as records change: live tasks (not succeeded, failed or
// stopped) and the resources their specs ask for. Quotas are judged against it at apply, in log order.
import type { TaskRecord } from '../contracts/task-model.js';
import { finalTaskStates } from '../contracts/task-model.js';

export interface NamespaceUsage {
  readonly tasks: number;
  readonly cpus: number;
  readonly memoryMb: number;
}

const none: NamespaceUsage = { tasks: 0, cpus: 0, memoryMb: 0 };

export function namespaceOf(spec: { readonly namespace?: string | undefined }): string {
  return spec.namespace ?? 'default';
}

export class UsageByNamespace {
  private readonly byNamespace = new Map<string, { tasks: number; cpus: number; memoryMb: number }>();

  of(namespace: string): NamespaceUsage {
    return this.byNamespace.get(namespace) ?? none;
  }

  clear(): void {
    this.byNamespace.clear();
  }

  /** Takes over another's counts (those of a store restored off to the side). */
  adopt(other: UsageByNamespace): void {
    this.byNamespace.clear();
    for (const [ns, u] of other.byNamespace) this.byNamespace.set(ns, u);
  }

  /** A record was written (prev null: created). */
  changed(next: TaskRecord, prev: TaskRecord | null): void {
    const was = prev !== null && !finalTaskStates.has(prev.state);
    const is = !finalTaskStates.has(next.state);
    if (was === is) return;
    this.count(namespaceOf(next.spec), is ? 1 : -1, next.spec.resources?.cpus ?? 0, next.spec.resources?.memoryMb ?? 0);
  }

  /** A live task created in `namespace` asking for these resources (a lazily restored record: see TaskStore). */
  added(namespace: string, cpus: number, memoryMb: number): void {
    this.count(namespace, 1, cpus, memoryMb);
  }

  private count(ns: string, sign: 1 | -1, cpus: number, memoryMb: number): void {
    let u = this.byNamespace.get(ns);
    if (u === undefined) this.byNamespace.set(ns, (u = { tasks: 0, cpus: 0, memoryMb: 0 }));
    u.tasks += sign;
    u.cpus += sign * cpus;
    u.memoryMb += sign * memoryMb;
    if (u.tasks === 0) this.byNamespace.delete(ns);
  }
}
