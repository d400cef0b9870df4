/**
 * Warm-start demonstrations: correct tool-using transcripts of a problem's
 * reference solution, in the text protocol the policy is trained on.
 *
 * The protocol (kept tiny, since a small byte-level model learns it from scratch):
 *
 * ```
 * Q: 4821*97+12=?\n<code>4821*97+12</code>\n<output>467649</output>\n<answer>467649</answer>
 * ```
 *
 * The prompt is `Q: <question>\n`; each policy turn is `<code>CODE</code>` or
 * `<answer>ANSWER</answer>`; the tool's feedback is `\n<output>RESULT</output>\n`.
 * A demonstration is returned turn by turn (policy text, feedback text) so the
 * trainer can tokenise each piece and mask feedback out of the loss.
 *
 * Four kinds: single-turn (one call, then the answer), multi-turn (one call per
 * step of a multi-step problem; a later step's code copies an earlier step's
 * output from the transcript), "failed call, then fix" (the first call carries
 * a plausible mistake, the tool reports the error, the next turn fixes it), and
 * "mental" (the answer at once, with no call). Mental demonstrations stand for a
 * teacher who can work some problems out in its head: a small student that imitates
 * them learns to answer without the tool, which it cannot do reliably, and RL then
 * has a decision to fix (call the tool) rather than only the precision of copying.
 * Tool outputs come from the caller's `runTool`, so the transcript shows what the
 * real sandbox prints; a demonstration whose final output does not match the
 * problem's answer is rejected rather than taught.
 *
 * @category constructors
 */
import { Data } from "effect"
import { Rng } from "@turnwise/core"
import { canonicalAnswer, checkAnswer, parseNumber } from "./answers.js"
import type { Problem } from "./problem.js"

// ---------------------------------------------------------------------------
// Protocol

/**
 * The pieces of the text protocol, shared with the rollout.
 *
 * @example
 * Protocol.prompt("2+2=?")   // "Q: 2+2=?\n"
 * Protocol.code("2+2")       // "<code>2+2</code>"
 * Protocol.feedback("4")     // "\n<output>4</output>\n"
 * Protocol.answer("4")       // "<answer>4</answer>"
 */
export const Protocol = {
  prompt: (question: string): string => `Q: ${question}\n`,
  code: (code: string): string => `<code>${code}</code>`,
  feedback: (output: string): string => `\n<output>${output}</output>\n`,
  answer: (answer: string): string => `<answer>${answer}</answer>`,
  /** Strings at which a policy turn ends (kept in the turn's text). */
  stops: ["</code>", "</answer>"] as ReadonlyArray<string>,
} as const

// ---------------------------------------------------------------------------
// Types

/** Runs one code string in the tool and returns the rendered output content (result or error). */
export type RunTool = (code: string) => string | Promise<string>

/** "single": the whole solution in one call; "multi": one call per reference step; "mental": the answer with no call. */
export type DemoStyle = "single" | "multi" | "mental"

/** The kinds of plausible mistake a "failed call, then fix" demonstration makes. */
export const MISTAKE_KINDS = ["unbalanced-paren", "trailing-operator", "identifier-typo"] as const
export type MistakeKind = (typeof MISTAKE_KINDS)[number]

/** The mistake a demonstration's first call makes: an arithmetic slip, or (program synthesis) a wrong function. */
export type DemoMistake = MistakeKind | "wrong-solution"

/** One policy turn and the tool feedback that followed it ("" after the answer). */
export interface DemoTurn {
  readonly policyText: string
  readonly feedbackText: string
}

/** A demonstration of one problem. */
export interface Demonstration {
  readonly problemId: string
  /** The prompt text (`Q: ...\n`), context only. */
  readonly prompt: string
  readonly turns: ReadonlyArray<DemoTurn>
  /** prompt + every turn's policy and feedback text, in order. */
  readonly text: string
  /** "single" when the solution took one (fixed) call, "mental" when it took none, "multi" otherwise. */
  readonly style: DemoStyle
  /** The mistake in the first call, or null for a clean demonstration. */
  readonly mistake: DemoMistake | null
}

/**
 * A demonstration could not be made (no reference solution, or the tool's output
 * disagrees with the problem's answer).
 *
 * @example
 * throw new DemonstrationError({ problemId: "gsm8k-3", problem: "no reference solution" })
 */
export class DemonstrationError extends Data.TaggedError("DemonstrationError")<{
  readonly problemId: string
  readonly problem: string
}> {
  override get message(): string {
    return `demonstration of problem ${this.problemId}: ${this.problem}`
  }
}

// ---------------------------------------------------------------------------
// Solutions

const COPYABLE = /^([0-9+\-*/(). ]+)=\?$/

/**
 * The reference solution of a problem as code steps: its `steps`, else the
 * question itself when it is a bare expression such as `482*97=?`; null otherwise.
 *
 * @example
 * solutionSteps({ ...p, question: "482*97=?", steps: undefined }) // ["482*97"]
 */
export const solutionSteps = (problem: Problem): ReadonlyArray<string> | null => {
  if (problem.steps !== undefined && problem.steps.length > 0) return problem.steps
  const m = COPYABLE.exec(problem.question.trim())
  return m?.[1] === undefined ? null : [m[1]]
}

const PLACEHOLDER = /\{(\d+)\}/g

/** Replace each `{k}` with `values[k]` (wrapped when it is more than a number). */
const substitute = (code: string, values: ReadonlyArray<string>, wrap: boolean): string =>
  code.replace(PLACEHOLDER, (whole, k: string) => {
    const v = values[Number(k)]
    if (v === undefined) return whole
    return wrap && !/^\d+(\.\d+)?$/.test(v) ? `(${v})` : v
  })

/**
 * All steps folded into one expression, each `{k}` replaced by step k's code.
 *
 * @example
 * inlineSteps(["1234-567", "{0}+3*567"]) // "(1234-567)+3*567"
 */
export const inlineSteps = (steps: ReadonlyArray<string>): string => {
  const inlined: Array<string> = []
  for (const step of steps) inlined.push(substitute(step, inlined, true))
  return inlined[inlined.length - 1] ?? ""
}

// ---------------------------------------------------------------------------
// Mistakes

// Letters that look like digits: the kind of slip that turns a number into an undefined name.
const LOOKALIKE: Record<string, string> = { "0": "O", "1": "l", "2": "Z", "3": "E", "4": "A", "5": "S", "6": "b", "7": "T", "8": "B", "9": "g" }

/**
 * A copy of `code` with a plausible mistake that makes JavaScript reject it:
 * an unclosed parenthesis (SyntaxError), a dangling operator (SyntaxError), or a
 * digit typed as a look-alike letter, so a number becomes an undefined name
 * (ReferenceError).
 *
 * @example
 * breakCode("4821*97+12", "trailing-operator", Rng.fromSeed(0))  // "4821*97+12+" or "4821*97+12*"
 * breakCode("4821*97+12", "identifier-typo", Rng.fromSeed(0))    // e.g. "4821*gT+12"
 */
export const breakCode = (code: string, kind: MistakeKind, rng: Rng): string => {
  const numbers = [...code.matchAll(/\d+/g)].filter((m) => m.index === 0 || !/[\w.]/.test(code[m.index - 1] ?? ""))
  switch (kind) {
    case "unbalanced-paren": {
      const close = code.lastIndexOf(")")
      if (close >= 0) return code.slice(0, close) + code.slice(close + 1)
      const at = numbers[rng.int(numbers.length)]?.index ?? 0
      return `${code.slice(0, at)}(${code.slice(at)}`
    }
    case "trailing-operator":
      return code + (rng.next() < 0.5 ? "+" : "*")
    case "identifier-typo": {
      const m = numbers[rng.int(numbers.length)]
      if (m === undefined) return `${code}+x`
      const first = m[0][0] ?? "0"
      return `${code.slice(0, m.index)}${LOOKALIKE[first] ?? "x"}${code.slice(m.index + 1)}`
    }
  }
}

// ---------------------------------------------------------------------------
// Demonstrations

/** Options of {@link makeDemonstration}. */
export interface DemonstrationOptions {
  /** The tool: code in, rendered output content out. */
  readonly runTool: RunTool
  /** "multi" (default): one call per step; "single": the steps inlined into one call; "mental": no call, the answer at once. */
  readonly style?: DemoStyle
  /** Put this mistake into the first call, then fix it; default none. */
  readonly mistake?: MistakeKind | null
  /** Seed for where the mistake goes (default 0). */
  readonly seed?: number
}

/**
 * A demonstration of one problem's reference solution, run through `runTool`.
 * Rejects with {@link DemonstrationError} when the problem has no reference
 * solution, a step's output is not a number, the final output is not the
 * problem's answer, or the intended mistake did not make the call fail.
 *
 * @example
 * const demo = await makeDemonstration(problem, { runTool: (code) => sandboxOutput(code) })
 * demo.text  // "Q: 4821*97+12=?\n<code>4821*97+12</code>\n<output>467649</output>\n<answer>467649</answer>"
 */
export const makeDemonstration = async (problem: Problem, options: DemonstrationOptions): Promise<Demonstration> => {
  const fail = (what: string) => new DemonstrationError({ problemId: problem.id, problem: what })
  const steps = solutionSteps(problem)
  if (steps === null) throw fail("no reference solution (no steps, and the question is not a bare expression)")
  const style = options.style ?? "multi"
  const mistake = options.mistake ?? null
  if (style === "mental") {
    if (mistake !== null) throw fail("a mental demonstration makes no call, so it cannot start with a failed one")
    const prompt = Protocol.prompt(problem.question)
    const turns = [{ policyText: Protocol.answer(canonicalAnswer(problem.answer)), feedbackText: "" }]
    return { problemId: problem.id, prompt, turns, text: prompt + turns[0]!.policyText, style, mistake }
  }
  const plan = style === "single" ? [inlineSteps(steps)] : steps

  const turns: Array<DemoTurn> = []
  const call = async (code: string): Promise<string> => {
    const output = (await options.runTool(code)).trim()
    turns.push({ policyText: Protocol.code(code), feedbackText: Protocol.feedback(output) })
    return output
  }

  const outputs: Array<string> = []
  for (const [i, template] of plan.entries()) {
    // Later steps copy earlier outputs, exactly as they appear in the transcript.
    const code = substitute(template, outputs, false)
    let brokenOutput: string | null = null
    if (i === 0 && mistake !== null) brokenOutput = await call(breakCode(code, mistake, Rng.fromSeed(options.seed ?? 0)))
    const output = await call(code)
    if (parseNumber(output) === null) throw fail(`step ${i + 1} (${code}) printed "${output}", not a number`)
    if (brokenOutput !== null && checkAnswer(brokenOutput, output)) {
      throw fail(`the ${mistake} mistake did not break the call: it printed "${brokenOutput}"`)
    }
    outputs.push(output)
  }

  const final = outputs[outputs.length - 1] ?? ""
  if (!checkAnswer(final, problem.answer)) {
    throw fail(`the tool's final output "${final}" is not the expected answer "${problem.answer}"`)
  }
  // Answer by copying the output when it is already in canonical form (the tiny model learns to copy).
  const answer = canonicalAnswer(final) === final ? final : canonicalAnswer(problem.answer)
  turns.push({ policyText: Protocol.answer(answer), feedbackText: "" })

  const prompt = Protocol.prompt(problem.question)
  const text = prompt + turns.map((t) => t.policyText + t.feedbackText).join("")
  return { problemId: problem.id, prompt, turns, text, style: plan.length === 1 ? "single" : "multi", mistake }
}

/** Options of {@link makeDemonstrations}. */
export interface DemonstrationsOptions {
  readonly runTool: RunTool
  /** Seed for which demonstrations fail first and how. */
  readonly seed: number
  /** Share of demonstrations that start with a failed call (default 0.15); exactly round(share * n). */
  readonly failShare?: number
  /** Share of multi-step problems solved in one inlined call instead of one call per step (default 0). */
  readonly singleShare?: number
  /** Share of demonstrations answered at once without a call (default 0); chosen among those without a failed call. */
  readonly mentalShare?: number
  /** How many demonstrations run their tool calls at the same time (default 8). */
  readonly concurrency?: number
  /** Leave out problems whose demonstration fails (e.g. data-set rows without steps) instead of rejecting. */
  readonly skipFailures?: boolean
}

/** Indices 0..n-1 in a seeded random order (Fisher-Yates). */
const shuffled = (n: number, rng: Rng): Array<number> => {
  const order = Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1)
    const a = order[i] ?? i
    order[i] = order[j] ?? j
    order[j] = a
  }
  return order
}

/**
 * Demonstrations for a list of problems, in the same order, with exactly
 * round(failShare * n) of them starting with a failed call (chosen by the seed).
 * Rejects with the first {@link DemonstrationError} unless `skipFailures` is set.
 *
 * @example
 * const demos = await makeDemonstrations(problems, { runTool, seed: 7, failShare: 0.15 })
 */
export const makeDemonstrations = async (
  problems: ReadonlyArray<Problem>,
  options: DemonstrationsOptions,
): Promise<Array<Demonstration>> => {
  const rng = Rng.fromSeed(options.seed)
  const failShare = options.failShare ?? 0.15
  const singleShare = options.singleShare ?? 0
  const mentalShare = options.mentalShare ?? 0
  const failing = new Set(shuffled(problems.length, rng).slice(0, Math.round(failShare * problems.length)))
  // Drawn from a stream of its own, so a mental share of 0 leaves every other choice as it was.
  const mentalRng = Rng.fromSeed(options.seed ^ 0x3e17a1)
  const mental = new Set(
    shuffled(problems.length, mentalRng).filter((i) => !failing.has(i)).slice(0, Math.round(mentalShare * problems.length)),
  )
  // Every random choice is made up front, so concurrency cannot change the result.
  const plans = problems.map((problem, i) => {
    const drawn: DemoStyle = rng.next() < singleShare ? "single" : "multi"
    const style: DemoStyle = mental.has(i) ? "mental" : drawn
    const mistake = failing.has(i) ? (MISTAKE_KINDS[rng.int(MISTAKE_KINDS.length)] ?? null) : null
    return { problem, style, mistake, seed: rng.nextUint32() }
  })
  const out: Array<Demonstration | undefined> = new Array(problems.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < plans.length) {
      const i = next++
      const plan = plans[i]
      if (plan === undefined) continue
      const made = makeDemonstration(plan.problem, { runTool: options.runTool, style: plan.style, mistake: plan.mistake, seed: plan.seed })
      out[i] = options.skipFailures === true
        ? await made.catch((e: unknown) => {
          if (e instanceof DemonstrationError) return undefined
          throw e
        })
        : await made
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker))
  return out.filter((d): d is Demonstration => d !== undefined)
}
