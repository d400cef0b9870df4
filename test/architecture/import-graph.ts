/**
 * The import graph of the workspace packages, read from their sources, and the
 * rules it must keep: packages depend only on the layers below them, and no module
 * reaches itself through its imports.
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** Each package and the packages it may import. The order is the layering, bottom first. */
export const layering: Readonly<Record<string, ReadonlyArray<string>>> = {
  core: [],
  dsl: ["core"],
  recipes: ["core", "dsl"],
  runtime: ["core", "dsl"],
  sandbox: ["core", "dsl"],
  tasks: ["core", "dsl"],
  cluster: ["core", "dsl", "runtime", "sandbox", "tasks"],
  cli: ["core", "dsl", "recipes", "runtime", "sandbox", "tasks", "cluster"],
}

/** Where each package's sources live, relative to the repository root. */
export const sourceRoots: Readonly<Record<string, string>> = {
  core: "packages/core/src",
  dsl: "packages/dsl/src",
  recipes: "recipes",
  runtime: "packages/runtime/src",
  sandbox: "packages/sandbox/src",
  tasks: "packages/tasks/src",
  cluster: "packages/cluster/src",
  cli: "packages/cli/src",
}

export interface ImportEdge {
  readonly from: string
  readonly to: string
  readonly specifier: string
}

const importPattern = /(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)|(?:^|\n)\s*import\s+"([^"]+)"/g

const listSources = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === "node_modules" ? [] : listSources(full)
    return entry.name.endsWith(".ts") ? [full] : []
  })

/** The module specifiers a source file imports or re-exports (comments are not parsed out; keep imports real). */
export const specifiersOf = (source: string): Array<string> =>
  [...source.matchAll(importPattern)].map((m) => m[1] ?? m[2] ?? m[3]!).filter((s) => s !== undefined)

/** The package a repository-relative file belongs to, if any. */
export const packageOf = (file: string): string | undefined => Object.entries(sourceRoots).find(([, root]) => file === root || file.startsWith(root + "/"))?.[0]

/** Every import edge between workspace files, and every import of a workspace package by name. */
export const readImportGraph = (repoRoot: string): { files: Array<string>; edges: Array<ImportEdge> } => {
  const files = Object.values(sourceRoots).flatMap((root) => listSources(path.join(repoRoot, root)).map((f) => path.relative(repoRoot, f)))
  const edges: Array<ImportEdge> = []
  for (const file of files) {
    for (const specifier of specifiersOf(fs.readFileSync(path.join(repoRoot, file), "utf8"))) {
      if (specifier.startsWith(".")) {
        const target = path.normalize(path.join(path.dirname(file), specifier)).replace(/\.js$/, ".ts")
        edges.push({ from: file, to: target, specifier })
      } else if (specifier.startsWith("@turnwise/")) {
        edges.push({ from: file, to: `@turnwise/${specifier.slice("@turnwise/".length).split("/")[0]}`, specifier })
      }
    }
  }
  return { files, edges }
}

/** Imports that break the layering: a package reaching one it may not, or a relative path into another package. */
export const layeringViolations = (edges: ReadonlyArray<ImportEdge>): Array<string> =>
  edges.flatMap((edge) => {
    const fromPackage = packageOf(edge.from)!
    const toPackage = edge.to.startsWith("@turnwise/") ? edge.to.slice("@turnwise/".length) : packageOf(edge.to)
    if (toPackage === undefined) return [`${edge.from} imports "${edge.specifier}", outside every package`]
    if (!edge.to.startsWith("@turnwise/") && toPackage !== fromPackage) {
      return [`${edge.from} reaches into ${toPackage} by a relative path ("${edge.specifier}"); import "@turnwise/${toPackage}"`]
    }
    if (toPackage === fromPackage) {
      return edge.to.startsWith("@turnwise/") ? [`${edge.from} imports its own package by name ("${edge.specifier}")`] : []
    }
    return layering[fromPackage]!.includes(toPackage) ? [] : [`${edge.from} (${fromPackage}) imports ${toPackage}, which is not below it`]
  })

/** Strongly connected components of more than one file (or a file importing itself): import circles. */
export const importCycles = (files: ReadonlyArray<string>, edges: ReadonlyArray<ImportEdge>): Array<Array<string>> => {
  const next = new Map<string, Array<string>>(files.map((f) => [f, []]))
  for (const edge of edges) if (next.has(edge.to)) next.get(edge.from)!.push(edge.to)
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const cycles: Array<Array<string>> = []
  const visit = (v: string): void => {
    index.set(v, counter)
    low.set(v, counter)
    counter++
    stack.push(v)
    onStack.add(v)
    for (const w of next.get(v)!) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
    }
    if (low.get(v) === index.get(v)) {
      const component: Array<string> = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1 || next.get(v)!.includes(v)) cycles.push(component.sort())
    }
  }
  for (const f of files) if (!index.has(f)) visit(f)
  return cycles
}
