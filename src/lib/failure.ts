// Every failure of a task is classified: transient ones are retried with backoff, permanent ones end the task.

export type FailureClass = 'transient' | 'permanent';
