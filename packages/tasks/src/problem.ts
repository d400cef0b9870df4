/**
 * The task data model: one {@link Problem} with an exact answer.
 *
 * Every task source (the built-in arithmetic generator, JSONL data sets) produces
 * Problems, so the rollout, the reward and the demonstration generator see one
 * shape. The answer is kept as a canonical string (see `canonicalAnswer` in
 * answers.ts) and compared with `checkAnswer`, never with `===`, because "1,000",
 * "1000" and "1e3" are the same answer.
 *
 * A Problem may carry a reference solution as tool calls (`steps`), which the
 * demonstration generator turns into warm-start transcripts. A step may refer to
 * the tool's output of an earlier step as `{k}` (0-based), so a demonstration
 * copies the earlier result from the transcript instead of recomputing it.
 *
 * @category models
 */
import { Schema } from "effect"

/** A simple tag value (kept small so tags print and serialise cleanly). */
export const TagValue = Schema.Union([Schema.String, Schema.Finite, Schema.Boolean])
export type TagValue = typeof TagValue.Type

/**
 * One problem with an exact answer.
 *
 * @example
 * const p: Problem = {
 *   id: "arith-L1-3f2a91c0", question: "482*97=?", answer: "46754",
 *   difficulty: 1, family: "arithmetic", tags: { ops: 1 }, steps: ["482*97"],
 * }
 */
export const Problem = Schema.Struct({
  /** Stable identifier, unique within its source. */
  id: Schema.String,
  /** The question as shown after `Q: ` in the prompt. */
  question: Schema.String,
  /** The exact answer, canonical form (integer, terminating decimal or reduced fraction). */
  answer: Schema.String,
  /** Graded difficulty: 1..5 for the built-in generator; 0 when unknown. */
  difficulty: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  /** The kind of problem ("arithmetic", "word-problem", or a data set's name). */
  family: Schema.String,
  /** Extra simple facts about the problem (level, template, source fields). */
  tags: Schema.Record(Schema.String, TagValue),
  /** Reference solution as JavaScript tool calls, one per step; `{k}` is step k's output. */
  steps: Schema.optional(Schema.Array(Schema.String)),
})
export type Problem = typeof Problem.Type

/**
 * Decode untrusted JSON into a Problem; throws an error naming the bad field.
 *
 * @example
 * const p = decodeProblem(JSON.parse(line))
 */
export const decodeProblem: (raw: unknown) => Problem = Schema.decodeUnknownSync(Problem)
