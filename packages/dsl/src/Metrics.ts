/**
 * Stable metric names. Reports, comparisons and users' dashboards read these names;
 * renaming one is a breaking change.
 *
 * From a rolled-out batch ({@link batchMetrics}): `outcome/accuracy` (fraction of
 * trajectories whose final answer is correct), `outcome/score`, `turns/mean`,
 * `tool/calls_per_trajectory`, `tool/use_rate` (fraction of trajectories that call
 * the tool at least once), `tool/error_rate` (fraction of tool calls that were
 * malformed or failed in the sandbox), `finish/answer_rate`, `tokens/policy`,
 * `batch/trajectories`.
 *
 * From the advantages ({@link advantageMetrics}): `advantage/turn{j}_mean`,
 * `advantage/turn{j}_std`, `groups/all_equal_frac`, `groups/zero_advantage_frac`.
 *
 * From the policy update (the tfjs trainer):
 * - `train/loss`, `train/grad_norm` (global norm before clipping, mean over the step's
 *   updates), `train/grad_norm_max`, `train/lr`, `train/tokens`,
 *   `train/tokens_per_update`, `train/updates`, `train/skipped` (this step skipped an
 *   update), `train/skipped_updates` (skipped updates so far in the run);
 * - measured after the step's updates: `kl/behaviour` (KL(pi_old || pi_new)),
 *   `kl/reference` (KL(pi_new || pi_ref), with a reference policy), `policy/entropy`;
 * - from the loss, before each update and averaged over them: `actor/pg_loss`,
 *   `actor/clip_frac` (0 by construction with one update per step),
 *   `actor/clip_frac_last` (the step's last update), `actor/approx_kl`,
 *   `actor/ratio_mean`, `actor/kl` (the KL penalty's estimate, with klBeta > 0).
 *
 * @category models
 */
import type { Batch, Values } from "@turnwise/core"

/** Outcome, turn and tool statistics of a batch. */
export const batchMetrics = (batch: Batch): Record<string, number> => {
  const trajectories = batch.groups.flatMap((group) => group.trajectories)
  const n = Math.max(1, trajectories.length)
  let correct = 0
  let score = 0
  let turns = 0
  let calls = 0
  let failedCalls = 0
  let users = 0
  let answered = 0
  let policyTokens = 0
  for (const trajectory of trajectories) {
    if (trajectory.outcome.correct) correct++
    score += trajectory.outcome.score
    turns += trajectory.turns.length
    if (trajectory.finishReason === "answer") answered++
    const callsBefore = calls
    for (const turn of trajectory.turns) {
      policyTokens += turn.policyTokens.length
      if (turn.toolCall !== null || turn.malformed !== null) {
        calls++
        if (turn.malformed !== null || (turn.toolStatus !== undefined && turn.toolStatus !== "ok")) failedCalls++
      }
    }
    if (calls > callsBefore) users++
  }
  return {
    "outcome/accuracy": correct / n,
    "outcome/score": score / n,
    "turns/mean": turns / n,
    "tool/calls_per_trajectory": calls / n,
    "tool/use_rate": users / n,
    "tool/error_rate": calls === 0 ? 0 : failedCalls / calls,
    "finish/answer_rate": answered / n,
    "tokens/policy": policyTokens,
    "batch/trajectories": trajectories.length,
  }
}

/** Turn indices reported separately by {@link advantageMetrics}; later turns are pooled into the last. */
const reportedTurns = 4

/**
 * What the advantage stage gave the update, and how much signal the batch had:
 * - `advantage/turn{j}_mean`, `advantage/turn{j}_std` (j = 1..4, the 4th pooling later
 *   turns): population mean and std of the advantages of turn j over the trajectories
 *   that have one (a trajectory-level advantage counts for each of its turns);
 * - `groups/all_equal_frac`: fraction of groups whose trajectories all have the same
 *   outcome (all correct or all wrong), where an outcome reward alone has no signal;
 * - `groups/zero_advantage_frac`: fraction of groups whose advantages are all zero
 *   (|A| < 1e-8), which contribute no gradient at all.
 *
 * @example
 * advantageMetrics(batch, advantages)["groups/all_equal_frac"] // 0.625
 */
export const advantageMetrics = (batch: Batch, advantages: Values<"advantage">): Record<string, number> => {
  const byTurn: Array<Array<number>> = Array.from({ length: reportedTurns }, () => [])
  let allEqual = 0
  let zero = 0
  batch.groups.forEach((group, g) => {
    const outcomes = new Set(group.trajectories.map((t) => t.outcome.correct))
    if (outcomes.size <= 1) allEqual++
    let groupZero = true
    group.trajectories.forEach((trajectory, i) => {
      trajectory.turns.forEach((_, j) => {
        const value = advantages.level === "turn" ? advantages.values[g]?.[i]?.[j] : advantages.values[g]?.[i]
        if (value === undefined) return
        byTurn[Math.min(j, reportedTurns - 1)]!.push(value)
        if (Math.abs(value) >= 1e-8) groupZero = false
      })
    })
    if (groupZero) zero++
  })
  const groups = Math.max(1, batch.groups.length)
  const out: Record<string, number> = {
    "groups/all_equal_frac": allEqual / groups,
    "groups/zero_advantage_frac": zero / groups,
  }
  byTurn.forEach((values, j) => {
    if (values.length === 0) return
    const mean = values.reduce((a, b) => a + b, 0) / values.length
    out[`advantage/turn${j + 1}_mean`] = mean
    out[`advantage/turn${j + 1}_std`] = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length)
  })
  return out
}

/** Mean of each metric over several records (keys missing in some records are averaged over those that have them). */
export const meanMetrics = (records: ReadonlyArray<Readonly<Record<string, number>>>): Record<string, number> => {
  const sums: Record<string, { sum: number; count: number }> = {}
  for (const record of records) {
    for (const [key, value] of Object.entries(record)) {
      const slot = (sums[key] ??= { sum: 0, count: 0 })
      slot.sum += value
      slot.count++
    }
  }
  return Object.fromEntries(Object.entries(sums).map(([key, { sum, count }]) => [key, sum / count]))
}
