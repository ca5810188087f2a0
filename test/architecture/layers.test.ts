// The arrows between src/ folders point one way (STYLE.md's picture): each folder may import only the folders listed
// for it in scripts/layers.mjs (the table, with the reasons), and no two files or folders import each other, even
// through others. eslint.config.js fences the arrows from the same table; this test also checks that every folder is
// in it, resolves every import (dynamic import(), which lint does not see, included) and finds the cycles.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allowed } from '../../scripts/layers.mjs';

const src = resolve(import.meta.dirname, '..', '..', 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** file -> the files it imports (relative imports only, .js specifiers resolved to .ts). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(src)) {
    const text = readFileSync(file, 'utf8');
    const targets = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)].map((m) =>
      resolve(dirname(file), (m[1] ?? m[2])!).replace(/\.js$/, '.ts'),
    );
    graph.set(file, targets);
  }
  return graph;
}

const folderOf = (file: string): string => relative(src, file).split(sep)[0]!;

/** Strongly connected groups of more than one node (Tarjan). */
function cycles(nodes: Iterable<string>, next: (n: string) => Iterable<string>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    for (let w = stack.pop()!; ; w = stack.pop()!) {
      onStack.delete(w);
      group.push(w);
      if (w === v) break;
    }
    if (group.length > 1) found.push(group);
  };
  for (const n of nodes) if (!index.has(n)) visit(n);
  return found;
}

describe('the layering of src/', () => {
  const graph = importGraph();

  it('every folder is in the table', () => {
    const folders = new Set([...graph.keys()].map(folderOf));
    expect([...folders].filter((f) => !(f in allowed))).toEqual([]);
  });

  it('each folder imports only the folders below it', () => {
    const wrong: string[] = [];
    for (const [file, targets] of graph) {
      const from = folderOf(file);
      for (const t of targets) {
        const to = folderOf(t);
        if (to !== from && !(allowed[from] ?? []).includes(to)) wrong.push(`${relative(src, file)} -> ${relative(src, t)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('no import cycles, between files or between folders', () => {
    expect(cycles(graph.keys(), (f) => (graph.get(f) ?? []).filter((t) => graph.has(t))).map((c) => c.map((f) => relative(src, f)))).toEqual([]);
    const folderEdges = new Map<string, Set<string>>();
    for (const [file, targets] of graph) for (const t of targets) if (folderOf(t) !== folderOf(file)) folderEdges.set(folderOf(file), (folderEdges.get(folderOf(file)) ?? new Set()).add(folderOf(t)));
    expect(cycles(Object.keys(allowed), (f) => folderEdges.get(f) ?? [])).toEqual([]);
  });
});
