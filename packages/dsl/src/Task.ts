/**
 * Tasks: what the policy is asked, and how its final answer is graded.
 *
 * A task renders a problem into prompt text and grades a trajectory's final answer
 * into an {@link Outcome}. Grading is an Effect that may use the sandbox (program
 * synthesis runs hidden tests); exact-answer tasks grade purely.
 *
 * @category models
 */
import type { Effect } from "effect"
import type { Outcome, Trajectory } from "@turnwise/core"
import type { Sandbox } from "./services/Sandbox.js"

/** The least a problem has: an id and a question. */
export interface TaskProblem {
  readonly id: string
  readonly question: string
}

/** A family of problems the policy can be trained and evaluated on. */
export interface Task<P extends TaskProblem = TaskProblem> {
  readonly name: string
  /** The prompt text for a problem (the tokenizer adds BOS). */
  readonly prompt: (problem: P) => string
  /** Grade the final answer (null when the policy gave none). */
  readonly grade: (problem: P, answer: string | null, trajectory: Omit<Trajectory, "outcome">) => Effect.Effect<Outcome, never, Sandbox>
}
