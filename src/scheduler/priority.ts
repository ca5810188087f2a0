// The pending queue's order: priority (high, normal, low), then age (task ids sort by creation).
export type Priority = 'high' | 'normal' | 'low';

export const priorities: readonly Priority[] = ['high', 'normal', 'low'];

export function priorityOf(spec: { readonly priority?: Priority | undefined }): Priority {
  return spec.priority ?? 'normal';
}

/** Ids in queue order: every high one, then normal, then low, each oldest (smallest id) first. */
export function queueOrder(tasks: readonly { readonly id: string; readonly priority: Priority }[]): string[] {
  const rank = { high: 0, normal: 1, low: 2 } as const;
  return [...tasks].sort((a, b) => rank[a.priority] - rank[b.priority] || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((t) => t.id);
}
