import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { importCycles, layering, layeringViolations, packageOf, readImportGraph, sourceRoots } from "./import-graph.js"

const repoRoot = path.resolve(import.meta.dirname, "../..")
const graph = readImportGraph(repoRoot)

describe("the workspace import graph", () => {
  it("reads every package's sources", () => {
    for (const pkg of Object.keys(sourceRoots)) expect(graph.files.some((f) => packageOf(f) === pkg)).toBe(true)
    expect(graph.edges.length).toBeGreaterThan(100)
  })

  it("has no upward arrows: each package imports only the packages below it", () => {
    expect(layeringViolations(graph.edges)).toEqual([])
  })

  it("has no circles between files", () => {
    expect(importCycles(graph.files, graph.edges)).toEqual([])
  })

  it("declares in each package.json the workspace packages it imports", () => {
    for (const [pkg, root] of Object.entries(sourceRoots)) {
      const manifest = JSON.parse(fs.readFileSync(path.join(repoRoot, root.replace(/\/src$/, ""), "package.json"), "utf8"))
      const declared = Object.keys(manifest.dependencies ?? {}).filter((d) => d.startsWith("@turnwise/")).map((d) => d.slice(10))
      const used = new Set(graph.edges.filter((e) => packageOf(e.from) === pkg && e.to.startsWith("@turnwise/")).map((e) => e.to.slice(10)))
      for (const u of used) expect(declared, `${pkg} imports @turnwise/${u}`).toContain(u)
      for (const d of declared) expect(layering[pkg], `${pkg} declares @turnwise/${d}`).toContain(d)
    }
  })

  it("catches what it is meant to catch", () => {
    const edges = [
      { from: "packages/core/src/a.ts", to: "@turnwise/dsl", specifier: "@turnwise/dsl" },
      { from: "packages/dsl/src/a.ts", to: "packages/core/src/b.ts", specifier: "../../core/src/b.js" },
      { from: "packages/dsl/src/a.ts", to: "packages/dsl/src/b.ts", specifier: "./b.js" },
      { from: "packages/dsl/src/b.ts", to: "packages/dsl/src/a.ts", specifier: "./a.js" },
    ]
    expect(layeringViolations(edges)).toHaveLength(2)
    expect(importCycles(["packages/dsl/src/a.ts", "packages/dsl/src/b.ts"], edges)).toEqual([["packages/dsl/src/a.ts", "packages/dsl/src/b.ts"]])
  })
})
