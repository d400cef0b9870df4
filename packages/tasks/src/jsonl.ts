/**
 * Loading `{question, answer}` data sets from JSONL (one JSON object per line).
 *
 * The common shape of math data sets: `{"question": "...", "answer": "..."}`.
 * GSM8K's answers are a worked solution ending in `#### 72`; the number after the
 * last `####` is the answer, and the solution's calculator annotations
 * (`<<48/2=24>>`) become the problem's reference steps when they are plain
 * arithmetic and the last one yields the answer (so demonstrations can be made).
 * A numeric JSON answer (`"answer": 42`) is accepted too. Other fields are kept in
 * `tags` when they are simple (string, number, boolean) and dropped otherwise.
 *
 * Blank lines are skipped. A bad line (invalid JSON, not an object, a missing,
 * mistyped or empty field, a `####` not followed by a number) raises a
 * {@link DatasetError} naming the file, the 1-based line number and the problem,
 * because silently skipping lines changes what a run trains and evaluates on.
 *
 * @category constructors
 */
import { readFileSync } from "node:fs"
import { basename, extname } from "node:path"
import { Data } from "effect"
import { canonicalAnswer, checkAnswer, parseNumber } from "./answers.js"
import type { Problem, TagValue } from "./problem.js"

/**
 * A data set file could not be read or has a bad line.
 *
 * @example
 * throw new DatasetError({ file: "gsm8k.jsonl", line: 12, problem: 'missing field "answer"' })
 * // message: gsm8k.jsonl:12: missing field "answer"
 */
export class DatasetError extends Data.TaggedError("DatasetError")<{
  /** The file (or the data set's name for inline text). */
  readonly file: string
  /** 1-based line number, or null when the problem concerns the whole file. */
  readonly line: number | null
  readonly problem: string
}> {
  override get message(): string {
    return this.line === null ? `${this.file}: ${this.problem}` : `${this.file}:${this.line}: ${this.problem}`
  }
}

/** Options of {@link loadJsonlProblems}. */
export interface JsonlOptions {
  /** Data set name: the problems' family and id prefix (default: the file's base name, or "inline"). */
  readonly name?: string
  /** Difficulty given to rows without an integer `difficulty` field (default 0, unknown). */
  readonly difficulty?: number
}

/** How a JSON value is named in error messages. */
export const describeJson = (v: unknown): string => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v)

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const ARITHMETIC = /^[0-9+\-*/(). ]+$/

/** Reference steps from GSM8K calculator annotations, or undefined when they are unusable. */
const annotationSteps = (solution: string, answer: string): Array<string> | undefined => {
  const found = [...solution.matchAll(/<<([^<>=]*)=([^<>]*)>>/g)]
  const last = found[found.length - 1]
  if (last === undefined || !checkAnswer(last[2] ?? "", answer)) return undefined
  const steps = found.map((m) => (m[1] ?? "").trim())
  return steps.every((s) => s !== "" && ARITHMETIC.test(s)) ? steps : undefined
}

/**
 * Call `visit` with each non-blank line of JSONL text parsed into an object, its
 * 1-based line number, and a constructor of the {@link DatasetError} for that line.
 * A line that is not JSON, or not an object, is reported with its number.
 */
export const forEachJsonlRow = (
  text: string,
  file: string,
  visit: (row: Record<string, unknown>, line: number, bad: (problem: string) => DatasetError) => void,
): void => {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/)
  for (const [index, raw] of lines.entries()) {
    const line = index + 1
    const bad = (problem: string) => new DatasetError({ file, line, problem })
    if (raw.trim() === "") continue
    let row: unknown
    try {
      row = JSON.parse(raw)
    } catch (e) {
      throw bad(`invalid JSON (${e instanceof Error ? e.message : String(e)})`)
    }
    if (!isRecord(row)) throw bad(`expected a JSON object, got ${describeJson(row)}`)
    visit(row, line, bad)
  }
}

/** The text of a JSONL file, or a {@link DatasetError} naming the file. */
export const readJsonlFile = (file: string): string => {
  try {
    return readFileSync(file, "utf8")
  } catch (e) {
    throw new DatasetError({ file, line: null, problem: `cannot read the file (${e instanceof Error ? e.message : String(e)})` })
  }
}

/**
 * Problems from JSONL text; `file` names the source in errors.
 *
 * @example
 * parseJsonlProblems('{"question":"2+2?","answer":"#### 4"}\n', { name: "toy" })
 * // [{ id: "toy-1", question: "2+2?", answer: "4", difficulty: 0, family: "toy", tags: {} }]
 */
export const parseJsonlProblems = (text: string, options: JsonlOptions & { readonly file?: string } = {}): Array<Problem> => {
  const name = options.name ?? "inline"
  const file = options.file ?? name
  const problems: Array<Problem> = []
  forEachJsonlRow(text, file, (row, line, bad) => {
    const question = row["question"]
    if (question === undefined) throw bad("missing field \"question\"")
    if (typeof question !== "string") throw bad(`field "question" must be a string, got ${describeJson(question)}`)
    if (question.trim() === "") throw bad("field \"question\" is empty")

    const rawAnswer = row["answer"]
    if (rawAnswer === undefined) throw bad("missing field \"answer\"")
    let answer: string
    let steps: Array<string> | undefined
    if (typeof rawAnswer === "number") {
      if (!Number.isFinite(rawAnswer)) throw bad(`field "answer" must be finite, got ${rawAnswer}`)
      answer = canonicalAnswer(rawAnswer)
    } else if (typeof rawAnswer === "string") {
      if (rawAnswer.trim() === "") throw bad("field \"answer\" is empty")
      const marker = rawAnswer.lastIndexOf("####")
      if (marker >= 0) {
        const after = rawAnswer.slice(marker + 4).trim()
        if (after === "" || parseNumber(after) === null) throw bad(`answer after "####" is not a number: "${after}"`)
        answer = canonicalAnswer(after)
        steps = annotationSteps(rawAnswer.slice(0, marker), answer)
      } else {
        answer = canonicalAnswer(rawAnswer.trim())
      }
    } else {
      throw bad(`field "answer" must be a string or a number, got ${describeJson(rawAnswer)}`)
    }

    const tags: Record<string, TagValue> = {}
    for (const [key, value] of Object.entries(row)) {
      if (key === "question" || key === "answer") continue
      if (typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value))) {
        tags[key] = value
      }
    }
    const declared = row["difficulty"]
    const difficulty = typeof declared === "number" && Number.isInteger(declared) && declared >= 0 ? declared : (options.difficulty ?? 0)

    const problem: Problem = { id: `${name}-${line}`, question: question.trim(), answer, difficulty, family: name, tags }
    problems.push(steps === undefined ? problem : { ...problem, steps })
  })
  if (problems.length === 0) throw new DatasetError({ file, line: null, problem: "contains no problems" })
  return problems
}

/**
 * Problems from a JSONL file (a path) or from inline text (`{ text }`).
 *
 * @example
 * const test = loadJsonlProblems("data/gsm8k-test.jsonl", { name: "gsm8k" })
 * const toy = loadJsonlProblems({ text: '{"question":"1/4+1/4?","answer":"1/2"}' })
 */
export const loadJsonlProblems = (source: string | { readonly text: string }, options: JsonlOptions = {}): Array<Problem> => {
  if (typeof source !== "string") return parseJsonlProblems(source.text, options)
  const text = readJsonlFile(source)
  const name = options.name ?? basename(source, extname(source))
  return parseJsonlProblems(text, { ...options, name, file: source })
}
