/**
 * User problem sets for program synthesis, one JSON object per line:
 *
 * ```json
 * {"prompt": "Write add(a, b): return a plus b.", "entry_point": "add",
 *  "tests": ["assert.deepEqual(add(1, 2), 3)", "assert.equal(add(-1, 1), 0)"],
 *  "language": "js", "solution": "function add(a,b){return a+b}"}
 * ```
 *
 * - `prompt` (required): the specification the policy sees.
 * - `entry_point` (required): the name of the function the tests call.
 * - `tests` (required): a non-empty array of code snippets; each is one test, and passes
 *   when it runs without raising. JavaScript tests may use `assert(cond)`,
 *   `assert.equal(a, b)` and `assert.deepEqual(a, b)`; Python tests use `assert`.
 * - `language` (optional): "js" or "python" (default: the loader's `language`, "js").
 * - `id`, `solution` (a reference, used for demonstrations), `difficulty` (optional).
 *
 * Other fields are ignored. A malformed line is reported with its line number and
 * the reason.
 *
 * @category constructors
 */
import { basename, extname } from "node:path"
import { DatasetError, describeJson, forEachJsonlRow, readJsonlFile } from "../jsonl.js"
import type { CodeProblem } from "./problem.js"

/** Options of {@link loadCodeProblems}. */
export interface CodeJsonlOptions {
  /** Data set name: the problems' family and id prefix (default: the file's base name, or "inline"). */
  readonly name?: string
  /** Language of rows without a `language` field (default "js"). */
  readonly language?: "js" | "python"
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/**
 * Program-synthesis problems from JSONL text; `file` names the source in errors.
 *
 * @example
 * parseCodeProblems('{"prompt":"Write add(a, b).","entry_point":"add","tests":["assert.equal(add(1,2),3)"]}')
 */
export const parseCodeProblems = (text: string, options: CodeJsonlOptions & { readonly file?: string } = {}): Array<CodeProblem> => {
  const name = options.name ?? "inline"
  const file = options.file ?? name
  const problems: Array<CodeProblem> = []
  const ids = new Set<string>()
  forEachJsonlRow(text, file, (row, line, bad) => {
    const text = (key: string, required: boolean): string | undefined => {
      const value = row[key]
      if (value === undefined) {
        if (required) throw bad(`missing field "${key}"`)
        return undefined
      }
      if (typeof value !== "string") throw bad(`field "${key}" must be a string, got ${describeJson(value)}`)
      if (value.trim() === "") throw bad(`field "${key}" is empty`)
      return value
    }
    const prompt = text("prompt", true)!.trim()
    const entryPoint = text("entry_point", true)!.trim()
    if (!IDENTIFIER.test(entryPoint)) throw bad(`field "entry_point" must be a function name, got "${entryPoint}"`)
    const tests = row["tests"]
    if (tests === undefined) throw bad("missing field \"tests\"")
    if (!Array.isArray(tests)) throw bad(`field "tests" must be an array of code strings, got ${describeJson(tests)}`)
    if (tests.length === 0) throw bad("field \"tests\" is empty: a problem needs at least one test")
    tests.forEach((test, k) => {
      if (typeof test !== "string") throw bad(`tests[${k}] must be a string of code, got ${describeJson(test)}`)
      if (test.trim() === "") throw bad(`tests[${k}] is empty`)
    })
    const language = row["language"] ?? options.language ?? "js"
    if (language !== "js" && language !== "python") throw bad(`field "language" must be "js" or "python", got ${JSON.stringify(language)}`)
    const id = text("id", false) ?? `${name}-${line}`
    if (ids.has(id)) throw bad(`duplicate id "${id}"`)
    ids.add(id)
    const solution = text("solution", false)
    const declared = row["difficulty"]
    if (declared !== undefined && !(typeof declared === "number" && Number.isInteger(declared) && declared >= 0)) {
      throw bad(`field "difficulty" must be a non-negative integer, got ${JSON.stringify(declared)}`)
    }
    problems.push({
      id,
      question: prompt,
      language,
      entryPoint,
      signature: entryPoint,
      description: prompt,
      examples: [],
      tests: tests as Array<string>,
      ...(solution === undefined ? {} : { reference: solution }),
      difficulty: declared ?? 0,
      family: name,
      tags: { line },
    })
  })
  if (problems.length === 0) throw new DatasetError({ file, line: null, problem: "contains no problems" })
  return problems
}

/**
 * Program-synthesis problems from a JSONL file (a path) or inline text (`{ text }`).
 *
 * @example
 * const problems = loadCodeProblems("data/my-functions.jsonl", { language: "python" })
 */
export const loadCodeProblems = (source: string | { readonly text: string }, options: CodeJsonlOptions = {}): Array<CodeProblem> =>
  typeof source === "string"
    ? parseCodeProblems(readJsonlFile(source), { ...options, name: options.name ?? basename(source, extname(source)), file: source })
    : parseCodeProblems(source.text, options)
