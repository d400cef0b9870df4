/**
 * The pipeline's view of exact-answer problems (the built-in arithmetic task and
 * JSONL data sets): the prompt is `Q: <question>\n`, and the final answer is graded
 * with {@link checkAnswer} (integers, decimals, fractions compared by value).
 *
 * @category constructors
 */
import { Effect } from "effect"
import type { Task } from "@turnwise/dsl"
import { checkAnswer } from "./answers.js"
import type { Problem } from "./problem.js"

/** The prompt text of a problem (the tokenizer adds BOS). */
export const promptText = (problem: Problem): string => `Q: ${problem.question}\n`

/**
 * An exact-answer task.
 *
 * @example
 * const task = exactAnswerTask("arithmetic")
 */
export const exactAnswerTask = (name: string): Task<Problem> => ({
  name,
  prompt: promptText,
  grade: (problem, answer) =>
    Effect.succeed(answer !== null && checkAnswer(answer, problem.answer) ? { correct: true, score: 1 } : { correct: false, score: 0 }),
})
