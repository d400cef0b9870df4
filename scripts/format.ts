/**
 * `npm run format` / `npm run format:check`: dprint's TypeScript formatter (the one the
 * Effect codebase uses) over the files dprint.json includes, with dprint.json's
 * settings. It runs the plugin's WebAssembly build through @dprint/formatter, so it
 * needs no native binary (dprint's per-platform packages are not all on every
 * registry mirror, and npm ci then refuses the lock).
 *
 * Usage: npx tsx scripts/format.ts [--check] [FILE...]  (no files: every file dprint.json includes)
 * With --check it writes nothing, lists the files that are not formatted and exits 1
 * when there is one.
 */
import { createFromBuffer } from "@dprint/formatter"
import typescriptPlugin from "@dprint/typescript"
import * as fs from "node:fs"
import * as path from "node:path"

interface DprintConfig {
  readonly lineWidth?: number
  readonly indentWidth?: number
  readonly typescript?: Record<string, unknown>
  readonly includes: ReadonlyArray<string>
  readonly excludes?: ReadonlyArray<string>
}

const root = path.resolve(import.meta.dirname, "..")
const config = JSON.parse(fs.readFileSync(path.join(root, "dprint.json"), "utf8")) as DprintConfig
const check = process.argv.includes("--check")
const named = process.argv.slice(2).filter((arg) => arg !== "--check").map((file) => path.relative(root, path.resolve(file)))

// "packages/**/*.ts" -> a RegExp over repository-relative paths.
const globToRegExp = (glob: string): RegExp =>
  new RegExp(`^${glob.split("**/").map((part) => part.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*")).join("(?:.*/)?")}$`)
const includes = config.includes.map(globToRegExp)
const excluded = new Set(["node_modules", ".git", ...(config.excludes ?? []).map((e) => e.replace(/^\*\*\//, ""))])

const files = (dir: string): Array<string> =>
  fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    if (excluded.has(entry.name)) return []
    const relative = dir === "" ? entry.name : `${dir}/${entry.name}`
    if (entry.isDirectory()) return files(relative)
    return includes.some((pattern) => pattern.test(relative)) ? [relative] : []
  })

const formatter = createFromBuffer(fs.readFileSync(typescriptPlugin.getPath()))
formatter.setConfig({ lineWidth: config.lineWidth ?? 120, indentWidth: config.indentWidth ?? 2 }, config.typescript ?? {})

const unformatted: Array<string> = []
for (const file of named.length > 0 ? named : files("")) {
  const text = fs.readFileSync(path.join(root, file), "utf8")
  const formatted = formatter.formatText({ filePath: file, fileText: text })
  if (formatted === text) continue
  unformatted.push(file)
  if (!check) fs.writeFileSync(path.join(root, file), formatted)
}
if (check && unformatted.length > 0) {
  console.error(`not formatted (run npm run format): ${unformatted.join(", ")}`)
  process.exit(1)
}
console.log(`${check ? "checked" : "formatted"} with dprint's TypeScript plugin: ${unformatted.length} file(s) ${check ? "to format" : "rewritten"}`)
