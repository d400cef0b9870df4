/**
 * Grade a submitted function against a problem's hidden tests in the sandbox.
 *
 * One sandbox session per grading: the harness cell, the submission cell, then one
 * cell per test (see harness.ts for why). Limits are the tool calls' own (deadline
 * and memory per cell). A test that times out, exhausts memory or crashes the
 * interpreter fails alone: the session is reopened and the submission redefined
 * before the next test, so the remaining tests still count. A submission that fails
 * to even define itself (a syntax error, a top-level infinite loop) passes nothing.
 *
 * @category constructors
 */
import { randomBytes } from "node:crypto"
import { Effect } from "effect"
import type { Outcome } from "@turnwise/core"
import { Sandbox } from "@turnwise/dsl"
import type { Observation, SandboxError } from "@turnwise/dsl"
import { harnessCell, submissionCode, testCell } from "./harness.js"
import type { CodeLanguage } from "./harness.js"

/** Per-cell limits of a grading run (the rollout's tool-call limits). */
export interface GradeLimits {
  readonly timeoutMs: number
  readonly memoryMb: number
}

/** The verdict of one hidden test. */
export interface TestVerdict {
  readonly passed: boolean
  /** "" when passed; otherwise why it failed (the assertion message, "timeout", ...). */
  readonly detail: string
}

/** A full grading: one verdict per test, and why the submission itself failed, if it did. */
export interface GradeReport {
  readonly passed: number
  readonly total: number
  readonly verdicts: ReadonlyArray<TestVerdict>
  /** The error of the submission cell (it did not define cleanly), or null. */
  readonly submissionError: string | null
}

/** What the grader needs of a problem. */
export interface GradedProblem {
  readonly language: CodeLanguage
  readonly entryPoint: string
  readonly tests: ReadonlyArray<string>
}

const failureText = (observation: Observation): string => observation.ok ? "" : `${observation.kind}: ${observation.error}`

/** A failure that may have lost the interpreter's state (the pool replaces wedged workers). */
const mayHaveLostState = (observation: Observation): boolean =>
  !observation.ok && (observation.kind === "timeout" || observation.kind === "memory" || observation.kind === "crash")

/** The failure message carried by a test cell's value ("-message", possibly quoted by the formatter). */
const valueDetail = (value: string | undefined): string => {
  if (value === undefined) return "no result"
  let text = value
  try {
    const parsed: unknown = JSON.parse(value)
    if (typeof parsed === "string") text = parsed
  } catch {
    text = value.replace(/^'(.*)'$/s, "$1")
  }
  return text.startsWith("-") ? text.slice(1) : text
}

/**
 * Run `submission` against every hidden test of `problem`.
 *
 * @example
 * const report = yield* runHiddenTests(problem, "function add(x){return x+7}", { timeoutMs: 2000, memoryMb: 64 })
 * // { passed: 5, total: 5, verdicts: [...], submissionError: null }
 */
export const runHiddenTests = (
  problem: GradedProblem,
  submission: string,
  limits: GradeLimits,
): Effect.Effect<GradeReport, SandboxError, Sandbox> =>
  Effect.gen(function*() {
    const sandbox = yield* Sandbox
    const language = problem.language
    const code = submissionCode(submission)
    const cell = (session: string, text: string) => sandbox.run({ language, code: text, session, timeoutMs: limits.timeoutMs, memoryMb: limits.memoryMb })

    // Open a session holding the harness and the submission; the submission's error, if any.
    const prepare = Effect.fn("prepare")(function*() {
      const session = yield* sandbox.openSession(language)
      const harness = yield* cell(session, harnessCell(language))
      if (!harness.ok) return yield* Effect.die(new Error(`the grading harness failed in the ${language} sandbox: ${failureText(harness)}`))
      const defined = yield* cell(session, code)
      return { session, error: defined.ok ? null : failureText(defined) }
    })

    let current = yield* prepare()
    const submissionError = current.error
    const verdicts: Array<TestVerdict> = []
    const runTests = Effect.gen(function*() {
      for (const test of problem.tests) {
        if (submissionError !== null) {
          verdicts.push({ passed: false, detail: `submission failed: ${submissionError}` })
          continue
        }
        const token = `tw-pass-${randomBytes(12).toString("hex")}`
        const observation = yield* cell(current.session, testCell(language, test, problem.entryPoint, token))
        const passed = observation.ok && observation.value !== undefined && observation.value.includes(token)
        verdicts.push({ passed, detail: passed ? "" : observation.ok ? valueDetail(observation.value) : failureText(observation) })
        if (mayHaveLostState(observation)) {
          yield* sandbox.closeSession(current.session)
          current = yield* prepare()
        }
      }
    })
    // The session in use when the tests end (or fail) is closed either way.
    yield* Effect.ensuring(runTests, Effect.suspend(() => sandbox.closeSession(current.session)))
    return { passed: verdicts.filter((v) => v.passed).length, total: problem.tests.length, verdicts, submissionError }
  })

/**
 * The outcome of a trajectory's final answer: score = fraction of hidden tests
 * passed, correct = all of them passed. No answer (or no tests) scores 0.
 */
export const gradeSubmission = (
  problem: GradedProblem,
  answer: string | null,
  limits: GradeLimits,
): Effect.Effect<Outcome, SandboxError, Sandbox> =>
  answer === null || submissionCode(answer) === "" || problem.tests.length === 0
    ? Effect.succeed({ correct: false, score: 0 })
    : Effect.map(runHiddenTests(problem, answer, limits), (report) => ({
      correct: report.passed === report.total,
      score: report.passed / report.total,
    }))
