/**
 * The data model of multi-turn tool-integrated reasoning.
 *
 * A prompt is answered by a {@link Trajectory} of {@link Turn}s. In each turn the
 * policy writes tokens (trained on); the sandbox's feedback is appended as tokens the
 * policy did not write (context only, masked out of the loss). A {@link Group} holds
 * the G trajectories sampled for one prompt; a {@link Batch} holds groups.
 *
 * Token ids are kept exactly as sampled: history is never re-tokenised, because
 * re-encoding text can produce different ids than the policy emitted and silently
 * breaks the importance ratio.
 *
 * Every type is an effect Schema so that untrusted JSON (a saved rollout, a user's
 * data) decodes with an error that names the bad field (see {@link decodeBatch}).
 *
 * @category models
 */
import { Schema } from "effect"

const TokenId = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Logprob = Schema.Finite.check(Schema.isLessThanOrEqualTo(0))

/** A tool call parsed out of a turn's text. */
export const ToolCall = Schema.Struct({
  /** Interpreter the code is for ("python", "js"). */
  language: Schema.String,
  /** The code, without its delimiters. */
  code: Schema.String,
})
export type ToolCall = typeof ToolCall.Type

/** Why a tool call in a turn was judged malformed (drives the format penalty). */
export const MalformedReason = Schema.Literals(["unterminated", "multiple-blocks", "empty", "syntax-error"])
export type MalformedReason = typeof MalformedReason.Type

/** How a tool call went: "ok", or the kind of failure the sandbox observed. */
export const ToolStatus = Schema.Literals(["ok", "error", "timeout", "memory", "crash"])
export type ToolStatus = typeof ToolStatus.Type

/** One turn: the policy's text, its parsed tool call, and the tool's feedback. */
export const Turn = Schema.Struct({
  /** Token ids the policy wrote in this turn (the only tokens trained on). */
  policyTokens: Schema.Array(TokenId),
  /** Log-probability of each policy token under the sampling policy (pi_old). */
  logprobs: Schema.Array(Logprob),
  /** The decoded policy text. */
  text: Schema.String,
  /** The tool call of this turn, or null when the turn called no tool. */
  toolCall: Schema.NullOr(ToolCall),
  /** Set when the turn attempted a tool call that could not be used. */
  malformed: Schema.NullOr(MalformedReason),
  /** Token ids of the rendered tool feedback appended after this turn (context only). */
  feedbackTokens: Schema.Array(TokenId),
  /** The rendered tool feedback text (empty when there was none). */
  feedbackText: Schema.String,
  /** The final answer given in this turn, or null. */
  answer: Schema.NullOr(Schema.String),
  /** How the tool call went, when one ran ("ok", or the sandbox's error kind). */
  toolStatus: Schema.optionalKey(ToolStatus),
})
export type Turn = typeof Turn.Type

/**
 * Why a trajectory ended: a final answer, the turn budget, the token budget (or the
 * model's context), or the policy stopping (end of sequence, text with neither a tool
 * call nor an answer) without answering.
 */
export const FinishReason = Schema.Literals(["answer", "turn-budget", "token-budget", "no-answer"])
export type FinishReason = typeof FinishReason.Type

/** The verdict on a trajectory's final answer. */
export const Outcome = Schema.Struct({
  /** The final answer is correct (all tests pass, for program synthesis). */
  correct: Schema.Boolean,
  /** Graded accuracy in [0, 1]: 1 or 0 for exact answers, the pass fraction for tests. */
  score: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(1)),
})
export type Outcome = typeof Outcome.Type

/** One sampled answer to a prompt, turn by turn. */
export const Trajectory = Schema.Struct({
  promptId: Schema.String,
  groupId: Schema.String,
  /** Token ids of the prompt (context only). */
  promptTokens: Schema.Array(TokenId),
  turns: Schema.Array(Turn),
  outcome: Outcome,
  finishReason: FinishReason,
})
export type Trajectory = typeof Trajectory.Type

/** The G trajectories sampled for one prompt. */
export const Group = Schema.Struct({
  groupId: Schema.String,
  promptId: Schema.String,
  trajectories: Schema.Array(Trajectory),
})
export type Group = typeof Group.Type

/** The groups of one training step. */
export const Batch = Schema.Struct({
  groups: Schema.Array(Group),
})
export type Batch = typeof Batch.Type

/**
 * Decode untrusted JSON into a {@link Batch}; throws a SchemaError whose message names
 * the bad field's path (e.g. `at ["groups"][0]["trajectories"][1]["turns"][0]["logprobs"][3]`).
 *
 * @example
 * const batch = decodeBatch(JSON.parse(fs.readFileSync("rollout.json", "utf8")))
 */
export const decodeBatch = (raw: unknown): Batch => Schema.decodeUnknownSync(Batch)(raw)

/** All code the trajectory ran, its blocks joined by newlines (the input to code-similarity shaping). */
export const trajectoryCode = (trajectory: Trajectory): string =>
  trajectory.turns.flatMap((turn) => (turn.toolCall === null ? [] : [turn.toolCall.code])).join("\n")
