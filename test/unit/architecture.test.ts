import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The folders of src/ import each other in one direction only: no two folders (src/api, src/worker,
 * each room src/shared/<room>, each top-level file of src/) may reach each other through imports.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = path.join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** src/api, src/worker, src/shared/<room>, or the file itself for a file directly in src/ (or src/shared/). */
export function folderOf(file: string): string {
  const parts = path.relative(ROOT, file).split(path.sep);
  if (parts[0] !== 'src') throw new Error(`${file} is outside src/`);
  if (parts.length === 2) return parts.join('/');
  if (parts[1] === 'shared') return parts.length === 3 ? 'src/shared' : `src/shared/${parts[2]}`;
  return `src/${parts[1]}`;
}

/** Relative module specifiers: static imports, re-exports, side-effect imports and dynamic import(). */
export function relativeImports(source: string): string[] {
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]+)\1/g;
  return [...source.matchAll(pattern)].map((match) => match[2]!);
}

export type Graph = Map<string, Set<string>>;

export function folderGraph(files: readonly string[], read: (file: string) => string): Graph {
  const graph: Graph = new Map();
  for (const file of files) {
    const from = folderOf(file);
    const edges = graph.get(from) ?? new Set<string>();
    graph.set(from, edges);
    for (const specifier of relativeImports(read(file))) {
      const target = path.resolve(path.dirname(file), specifier).replace(/\.js$/, '.ts');
      const to = folderOf(target);
      if (to !== from) edges.add(to);
    }
  }
  return graph;
}

/** One cycle as a path that starts and ends at the same folder, or null when the graph has none. */
export function findCycle(graph: Graph): string[] | null {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    state.set(node, 'visiting');
    stack.push(node);
    for (const next of [...(graph.get(node) ?? [])].sort()) {
      if (state.get(next) === 'visiting') return [...stack.slice(stack.indexOf(next)), next];
      if (state.get(next) === undefined) {
        const cycle = visit(next);
        if (cycle) return cycle;
      }
    }
    stack.pop();
    state.set(node, 'done');
    return null;
  };
  for (const node of [...graph.keys()].sort()) {
    if (state.get(node) === undefined) {
      const cycle = visit(node);
      if (cycle) return cycle;
    }
  }
  return null;
}

describe('architecture', () => {
  it('finds a cycle when there is one, and names its path', () => {
    const graph: Graph = new Map([
      ['src/api', new Set(['src/shared/wallets'])],
      ['src/shared/wallets', new Set(['src/shared/infra'])],
      ['src/shared/infra', new Set(['src/shared/wallets'])],
    ]);
    expect(findCycle(graph)).toEqual(['src/shared/wallets', 'src/shared/infra', 'src/shared/wallets']);
    graph.set('src/shared/infra', new Set());
    expect(findCycle(graph)).toBeNull();
  });

  it('reads every kind of relative import', () => {
    const source = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      "export { c } from './c.js';",
      "import './side-effect.js';",
      "const d = await import('../d.js');",
      "import { z } from 'zod';",
    ].join('\n');
    expect(relativeImports(source)).toEqual(['./a.js', '../b.js', './c.js', './side-effect.js', '../d.js']);
  });

  it('has no import cycle between the folders of src/', () => {
    const graph = folderGraph(sourceFiles(SRC), (file) => readFileSync(file, 'utf8'));
    expect(graph.size).toBeGreaterThan(5);
    const cycle = findCycle(graph);
    expect(cycle, cycle ? `import cycle between folders: ${cycle.join(' -> ')}` : undefined).toBeNull();
  });

  it('keeps telemetry a leaf and infra near one: infra imports only telemetry', () => {
    const graph = folderGraph(sourceFiles(SRC), (file) => readFileSync(file, 'utf8'));
    expect([...(graph.get('src/shared/telemetry') ?? [])]).toEqual([]);
    expect([...(graph.get('src/shared/infra') ?? [])]).toEqual(['src/shared/telemetry']);
  });
});
