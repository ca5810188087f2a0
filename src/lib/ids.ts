// Branded ids: mixing a term with an index, or a node id with a task id, is a type error.

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

export type NodeId = Brand<string, 'NodeId'>;
export type Term = Brand<number, 'Term'>;
export type LogIndex = Brand<number, 'LogIndex'>;
export type TaskId = Brand<string, 'TaskId'>;
export type WorkerId = Brand<string, 'WorkerId'>;

export const nodeId = (s: string): NodeId => s as NodeId;
export const term = (n: number): Term => n as Term;
export const logIndex = (n: number): LogIndex => n as LogIndex;
export const taskId = (s: string): TaskId => s as TaskId;
export const workerId = (s: string): WorkerId => s as WorkerId;

/**
 * Whom a call between nodes means to reach: the identity the server's certificate must name. Worker `id`; or a
 * manager's API: manager `id`, or any manager of the cluster when `id` is absent (a URL an operator gave, a worker's
 * list of managers). A manager's API may serve the operator's API certificate instead, which names no node.
 */
export type ExpectedServer = { readonly role: 'worker'; readonly id: string } | { readonly role: 'manager'; readonly id?: string };

/** A manager's API, whichever manager it is: what a call that states no one expects. */
export const anyManager: ExpectedServer = { role: 'manager' };

/** As a refusal names it: 'worker w1', 'manager m2', 'a manager'. */
export function describeExpected(e: ExpectedServer): string {
  return e.id === undefined ? 'a manager' : `${e.role} ${e.id}`;
}
