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
