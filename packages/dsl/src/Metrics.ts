/**
 * Stable metric names computed from a rolled-out batch.
 *
 * `outcome/accuracy` is the fraction of trajectories whose final answer is correct;
 * `tool/error_rate` the fraction of tool calls that were malformed or failed in the
 * sandbox. Reports and comparisons read these names.
 *
 * @category models
 */
import type { Batch } from "@turnwise/core"

/** Outcome, turn and tool statistics of a batch. */
export const batchMetrics = (batch: Batch): Record<string, number> => {
  const trajectories = batch.groups.flatMap((group) => group.trajectories)
  const n = Math.max(1, trajectories.length)
  let correct = 0
  let score = 0
  let turns = 0
  let calls = 0
  let failedCalls = 0
  let answered = 0
  let policyTokens = 0
  for (const trajectory of trajectories) {
    if (trajectory.outcome.correct) correct++
    score += trajectory.outcome.score
    turns += trajectory.turns.length
    if (trajectory.finishReason === "answer") answered++
    for (const turn of trajectory.turns) {
      policyTokens += turn.policyTokens.length
      if (turn.toolCall !== null || turn.malformed !== null) {
        calls++
        if (turn.malformed !== null || (turn.toolStatus !== undefined && turn.toolStatus !== "ok")) failedCalls++
      }
    }
  }
  return {
    "outcome/accuracy": correct / n,
    "outcome/score": score / n,
    "turns/mean": turns / n,
    "tool/calls_per_trajectory": calls / n,
    "tool/error_rate": calls === 0 ? 0 : failedCalls / calls,
    "finish/answer_rate": answered / n,
    "tokens/policy": policyTokens,
    "batch/trajectories": trajectories.length,
  }
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
