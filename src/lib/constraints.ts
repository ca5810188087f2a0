// Placement constraints on worker labels ("zone==a", "disk!=hdd", "gpu"): their syntax, shared by the task spec's
// check (kv) and the scheduler, which both sit above lib.

/** A label's key: a letter or digit, then letters, digits, '.', '_', '/', '-' (at most 63 characters). */
export const labelKeyPattern = '^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$';
/** A label's value: letters, digits, '.', '_', '-' (at most 63 characters, may be empty). */
export const labelValuePattern = '^[A-Za-z0-9._-]{0,63}$';

/** The two patterns in words, as every message about a label says them. */
export const labelKeyRule = "a letter or digit, then letters, digits, '.', '_', '/' or '-'; at most 63 characters";
export const labelValueRule = "letters, digits, '.', '_' or '-'; at most 63 characters";

const keyRe = new RegExp(labelKeyPattern);
const valueRe = new RegExp(labelValuePattern);

export type Constraint =
  | { readonly kind: 'eq'; readonly key: string; readonly value: string }
  | { readonly kind: 'ne'; readonly key: string; readonly value: string }
  | { readonly kind: 'has'; readonly key: string };

/** Parses one constraint; a string that is none answers the problem as text. */
export function parseConstraint(text: string): Constraint | string {
  const op = text.includes('==') ? '==' : text.includes('!=') ? '!=' : null;
  if (op === null) return keyRe.test(text) ? { kind: 'has', key: text } : `expected "key==value", "key!=value" or "key" (a label key of letters, digits, ".", "_", "/", "-")`;
  const i = text.indexOf(op);
  const key = text.slice(0, i);
  const value = text.slice(i + 2);
  if (!keyRe.test(key)) return `${JSON.stringify(key)} is not a valid label key (${labelKeyRule})`;
  if (!valueRe.test(value)) return `${JSON.stringify(value)} is not a valid label value (${labelValueRule})`;
  return { kind: op === '==' ? 'eq' : 'ne', key, value };
}

/** Whether labels satisfy a constraint: "k==v" needs k set to v; "k!=v" needs k absent or set to another value. */
export function satisfies(labels: Readonly<Record<string, string>>, c: Constraint): boolean {
  const has = Object.hasOwn(labels, c.key);
  switch (c.kind) {
    case 'has':
      return has;
    case 'eq':
      return has && labels[c.key] === c.value;
    case 'ne':
      return !has || labels[c.key] !== c.value;
  }
}

/** Why labels fail a constraint, as `task why` says it ("label zone!=a", "label gpu missing"). */
export function unmetText(labels: Readonly<Record<string, string>>, c: Constraint): string {
  switch (c.kind) {
    case 'has':
      return `label ${c.key} missing`;
    case 'eq':
      return Object.hasOwn(labels, c.key) ? `label ${c.key}!=${c.value} (it is ${labels[c.key]})` : `label ${c.key}!=${c.value} (unset)`;
    case 'ne':
      return `label ${c.key}==${c.value}`;
  }
}

/** Checks a labels map: answers the first problem as `<key>: <problem>`, or null. */
export function labelsProblem(labels: Readonly<Record<string, string>>): string | null {
  for (const [k, v] of Object.entries(labels)) {
    if (!keyRe.test(k)) return `${JSON.stringify(k)}: not a valid label key (${labelKeyRule})`;
    if (!valueRe.test(v)) return `${k}: ${JSON.stringify(v)} is not a valid label value (${labelValueRule})`;
  }
  return null;
}
