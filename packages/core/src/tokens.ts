/**
 * From trajectories and per-turn advantages to the token-level view the trainer
 * consumes ({@link TrainingSequence}).
 *
 * A trajectory flattens to: prompt tokens, then for each turn its policy tokens
 * followed by its tool-feedback tokens, with the exact ids that were sampled. Only
 * policy tokens carry mask 1, their sampling logprob and their turn's advantage;
 * prompt and feedback tokens are context (mask 0, logprob 0, advantage 0, turn
 * index -1), so they add nothing to the loss nor to the importance ratio.
 *
 * @category constructors
 */
import { AlgorithmInputError } from "./errors.js"
import type { Batch, Trajectory } from "./model.js"
import type { TrainingSequence } from "./sequence.js"
import { assertNonEmptyBatch, assertTurnShape, where, type PerTurn } from "./values.js"

/**
 * One trajectory as a training sequence, each turn's advantage on its policy tokens.
 * Throws {@link AlgorithmInputError} when the advantages do not match the turns, a
 * turn's logprobs do not match its policy tokens, or the prompt is empty (the first
 * token would have nothing to be predicted from; see sequence.ts). `at` names the
 * trajectory in error messages (toTrainingSequences passes `group g, trajectory i`).
 *
 * @example
 * const seq = toTrainingSequence(trajectory, [0.5, -0.2])
 * seq.mask // [0, 0, 1, 1, 0, 1]  (2 prompt tokens, turn 0: 2 policy + 1 feedback, turn 1: 1 policy)
 */
export const toTrainingSequence = (
  trajectory: Trajectory,
  turnAdvantages: ReadonlyArray<number>,
  at = "trajectory",
): TrainingSequence => {
  const fn = "toTrainingSequence"
  if (trajectory.turns.length === 0) throw new AlgorithmInputError({ fn, where: at, problem: "the trajectory has no turns" })
  if (trajectory.promptTokens.length === 0) {
    throw new AlgorithmInputError({ fn, where: at, problem: "the prompt has no tokens, so the first policy token cannot be predicted" })
  }
  if (turnAdvantages.length !== trajectory.turns.length) {
    throw new AlgorithmInputError({ fn, where: at, problem: `${turnAdvantages.length} advantages for ${trajectory.turns.length} turns` })
  }
  const tokens: number[] = [...trajectory.promptTokens]
  const context = trajectory.promptTokens.map(() => 0)
  const mask: number[] = [...context]
  const oldLogprobs: number[] = [...context]
  const advantages: number[] = [...context]
  const turnIndex: number[] = trajectory.promptTokens.map(() => -1)
  trajectory.turns.forEach((turn, j) => {
    const place = `${at}, turn ${j}`
    if (turn.logprobs.length !== turn.policyTokens.length) {
      throw new AlgorithmInputError({ fn, where: place, problem: `${turn.logprobs.length} logprobs for ${turn.policyTokens.length} policy tokens` })
    }
    const advantage = turnAdvantages[j]!
    if (!Number.isFinite(advantage)) throw new AlgorithmInputError({ fn, where: place, problem: `advantage is ${advantage}` })
    turn.policyTokens.forEach((token, t) => {
      tokens.push(token)
      mask.push(1)
      oldLogprobs.push(turn.logprobs[t]!)
      advantages.push(advantage)
      turnIndex.push(j)
    })
    for (const token of turn.feedbackTokens) {
      tokens.push(token)
      mask.push(0)
      oldLogprobs.push(0)
      advantages.push(0)
      turnIndex.push(-1)
    }
  })
  return { tokens, mask, oldLogprobs, advantages, turnIndex }
}

/**
 * Every trajectory of the batch as a training sequence, in group order (group 0's
 * trajectories first).
 *
 * @example
 * const sequences = toTrainingSequences(batch, broadcastToTurns(batch, grpoAdvantages(batch, returns)))
 */
export const toTrainingSequences = (batch: Batch, advantages: PerTurn<"advantage">): TrainingSequence[] => {
  const fn = "toTrainingSequences"
  assertNonEmptyBatch(fn, batch)
  assertTurnShape(fn, batch, advantages)
  return batch.groups.flatMap((group, g) => group.trajectories.map((trajectory, i) => toTrainingSequence(trajectory, advantages.values[g]![i]!, where(g, i))))
}
