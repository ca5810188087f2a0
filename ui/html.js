// The one template tag of the dashboard's pages: htm over preact's h, with every text child shown as the CLI shows
// it: a control character or a bidirectional override (U+202E in a task's command would show the rest of it
// reversed, so that it reads other than what runs) is written as its escape, \u202e. Newlines, tabs and carriage
// returns stay (a task's output). Attributes (an input's value) are left as they are.
import { h } from 'preact';
import htm from 'htm';

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const controls = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** Text with its control, bidi-override and invisible characters (zero-width space, byte-order mark, line separators) written as \uXXXX. */
export function shown(text) {
  return text.replace(controls, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function shownChild(child) {
  if (typeof child === 'string') return shown(child);
  return Array.isArray(child) ? child.map(shownChild) : child;
}

export const html = htm.bind((type, props, ...children) => h(type, props, ...children.map(shownChild)));
