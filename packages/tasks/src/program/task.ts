/**
 * The pipeline's view of program-synthesis problems: the prompt is the
 * specification, and the final answer is graded by the hidden tests (score = pass
 * fraction, correct = all pass), with the rollout's tool-call limits.
 *
 * The final answer is either the function's code (`<answer>function add(x){...}</answer>`)
 * or just the entry point's name (`<answer>add</answer>`), which submits the code of
 * the trajectory's last tool call in the problem's language (the call that defined
 * and tried the function). The short form keeps a small model's transcripts short.
 *
 * @category constructors
 */
import { Effect } from "effect"
import type { Trajectory } from "@turnwise/core"
import type { Task } from "@turnwise/dsl"
import { Protocol } from "../demonstrations.js"
import { gradeSubmission } from "./grade.js"
import type { GradeLimits } from "./grade.js"
import type { CodeProblem } from "./problem.js"

/**
 * The code a final answer submits (see the module doc), or null when there is none.
 *
 * @example
 * submissionOf(problem, "add", trajectory) // the code of the last tool call
 */
export const submissionOf = (problem: CodeProblem, answer: string | null, trajectory: Pick<Trajectory, "turns">): string | null => {
  if (answer === null) return null
  const named = answer.trim().replace(/\(\s*\)$/, "")
  if (named !== problem.entryPoint) return answer
  for (let j = trajectory.turns.length - 1; j >= 0; j--) {
    const call = trajectory.turns[j]!.toolCall
    if (call !== null && call.language === problem.language) return call.code
  }
  return null
}

/**
 * A program-synthesis task.
 *
 * @example
 * const task = programSynthesisTask({ limits: { timeoutMs: 2000, memoryMb: 64 } })
 */
export const programSynthesisTask = (options: { readonly name?: string; readonly limits: GradeLimits }): Task<CodeProblem> => ({
  name: options.name ?? "program",
  prompt: (problem) => Protocol.prompt(problem.question),
  // A broken sandbox (not a misbehaving guest) cannot grade anything: that ends the run.
  grade: (problem, answer, trajectory) => Effect.orDie(gradeSubmission(problem, submissionOf(problem, answer, trajectory), options.limits)),
})
