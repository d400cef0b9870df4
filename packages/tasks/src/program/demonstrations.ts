/**
 * Warm-start demonstrations for program-synthesis problems, in the rollout's protocol:
 *
 * ```
 * Q: Write add(x): return x plus 7.\nadd(2) == 9\n
 * <code>function add(x){return x+7}\nadd(2)</code>\n<output>9</output>\n<answer>add</answer>
 * ```
 *
 * The policy defines its function and tries it on the prompt's example; when the
 * output matches, it submits by naming the entry point (the grader takes the code of
 * the last tool call, see task.ts). A "fail, then fix" demonstration first runs the
 * problem's plausible wrong solution, sees the wrong output, then runs the reference.
 * Outputs come from the real sandbox, so the transcript shows exactly what the policy
 * will see; a demonstration whose reference does not reproduce the example is
 * rejected rather than taught.
 *
 * @category constructors
 */
import { Rng } from "@turnwise/core"
import { DemonstrationError, Protocol } from "../demonstrations.js"
import type { Demonstration, DemoTurn, RunTool } from "../demonstrations.js"
import type { CodeProblem } from "./problem.js"

/** The tool call that defines the function and, when the prompt has an example, tries it. */
export const tryCode = (solution: string, problem: CodeProblem): string => {
  const example = problem.examples[0]
  return example === undefined ? solution : `${solution}\n${example.call}`
}

/**
 * A demonstration of one problem's reference solution; with `withMistake`, the
 * first call runs the problem's wrong solution (when it has one that visibly fails).
 *
 * @example
 * const demo = await makeCodeDemonstration(problem, { runTool, withMistake: false })
 */
export const makeCodeDemonstration = async (
  problem: CodeProblem,
  options: { readonly runTool: RunTool; readonly withMistake: boolean },
): Promise<Demonstration> => {
  const fail = (what: string) => new DemonstrationError({ problemId: problem.id, problem: what })
  if (problem.reference === undefined) throw fail("no reference solution")
  const expected = problem.examples[0]?.result
  const turns: Array<DemoTurn> = []
  const call = async (code: string): Promise<string> => {
    const output = (await options.runTool(code)).trim()
    turns.push({ policyText: Protocol.code(code), feedbackText: Protocol.feedback(output) })
    return output
  }
  let mistake: Demonstration["mistake"] = null
  if (options.withMistake && problem.buggy !== undefined && expected !== undefined) {
    const wrong = await call(tryCode(problem.buggy, problem))
    if (wrong === expected) turns.pop() // the wrong solution happens to pass the example: teach no mistake
    else mistake = "wrong-solution"
  }
  const output = await call(tryCode(problem.reference, problem))
  if (expected !== undefined && output !== expected) {
    throw fail(`the reference printed "${output}" for ${problem.examples[0]!.call}, the example says ${expected}`)
  }
  turns.push({ policyText: Protocol.answer(problem.entryPoint), feedbackText: "" })
  const prompt = Protocol.prompt(problem.question)
  const text = prompt + turns.map((t) => t.policyText + t.feedbackText).join("")
  return { problemId: problem.id, prompt, turns, text, style: "single", mistake }
}

/**
 * Demonstrations for a list of problems (same order; problems without a reference
 * are left out), with about `failShare` of them starting with a wrong solution.
 *
 * @example
 * const demos = await makeCodeDemonstrations(problems, { runTool, seed: 7, failShare: 0.15 })
 */
export const makeCodeDemonstrations = async (
  problems: ReadonlyArray<CodeProblem>,
  options: { readonly runTool: RunTool; readonly seed: number; readonly failShare?: number; readonly concurrency?: number },
): Promise<Array<Demonstration>> => {
  const rng = Rng.fromSeed(options.seed)
  const failShare = options.failShare ?? 0.15
  // Choices are drawn up front so concurrency cannot change the result.
  const plans = problems.map((problem) => ({ problem, withMistake: rng.next() < failShare }))
  const out: Array<Demonstration | undefined> = new Array(problems.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < plans.length) {
      const i = next++
      const plan = plans[i]!
      if (plan.problem.reference === undefined) continue
      out[i] = await makeCodeDemonstration(plan.problem, { runTool: options.runTool, withMistake: plan.withMistake })
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker))
  return out.filter((d): d is Demonstration => d !== undefined)
}
