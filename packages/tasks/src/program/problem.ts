/**
 * The program-synthesis data model: one {@link CodeProblem}, a specification the
 * policy sees and hidden unit tests it does not.
 *
 * The prompt shows the function's signature, a one-line description and a few
 * worked examples; the tests are code run against the submitted function in the
 * sandbox (see grade.ts). Every source of such problems (the built-in generator,
 * JSONL problem sets) produces CodeProblems, so the rollout, the grader and the
 * demonstration generator see one shape.
 *
 * @category models
 */
import { Schema } from "effect"
import { TagValue } from "../problem.js"

/** A worked example shown in the prompt: a call and the value it returns, as code. */
export const CodeExample = Schema.Struct({
  /** A call of the entry point, e.g. `add(2)`. */
  call: Schema.String,
  /** The returned value as a literal (JSON notation), e.g. `9`. */
  result: Schema.String,
})
export type CodeExample = typeof CodeExample.Type

/**
 * One program-synthesis problem.
 *
 * @example
 * const p: CodeProblem = {
 *   id: "prog-L1-add-3f2a91c0", question: "Write add(x): return x plus 7.\nadd(2) == 9",
 *   language: "js", entryPoint: "add", signature: "add(x)", description: "return x plus 7.",
 *   examples: [{ call: "add(2)", result: "9" }],
 *   tests: ["assert.deepEqual(add(5), 12)"], reference: "function add(x){return x+7}",
 *   difficulty: 1, family: "program", tags: { template: "add" },
 * }
 */
export const CodeProblem = Schema.Struct({
  /** Stable identifier, unique within its source. */
  id: Schema.String,
  /** The specification as shown after the prompt's `Q: ` (signature, description, examples). */
  question: Schema.String,
  /** Language of the submission and the tests. */
  language: Schema.Literals(["js", "python"]),
  /** Name of the function the tests call. */
  entryPoint: Schema.String,
  /** The function's signature as shown to the policy, e.g. `add(x)`. */
  signature: Schema.String,
  /** What the function must do, in one line. */
  description: Schema.String,
  /** Worked examples shown in the prompt (not the hidden tests). */
  examples: Schema.Array(CodeExample),
  /** Hidden tests, one code snippet each: a test passes when it runs without raising. */
  tests: Schema.Array(Schema.String),
  /** A reference solution (needed for demonstrations), or absent. */
  reference: Schema.optional(Schema.String),
  /** A plausible wrong solution that fails the first example (for "fail, then fix" demonstrations). */
  buggy: Schema.optional(Schema.String),
  /** Graded difficulty: 1..4 for the built-in generator; 0 when unknown. */
  difficulty: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  /** The kind of problem ("program", or a data set's name). */
  family: Schema.String,
  /** Extra simple facts about the problem (template, level, source fields). */
  tags: Schema.Record(Schema.String, TagValue),
})
export type CodeProblem = typeof CodeProblem.Type

/** The text of a problem's specification: signature and description, then one line per example. */
export const specificationText = (spec: {
  readonly signature: string
  readonly description: string
  readonly examples: ReadonlyArray<CodeExample>
}): string => [`Write ${spec.signature}: ${spec.description}`, ...spec.examples.map((e) => `${e.call} == ${e.result}`)].join("\n")
