/**
 * A custom reward and a custom advantage estimator, each one function plus one entry.
 *
 * The reward: the outcome, minus 0.05 for every tool call after the first (prefer
 * short solutions), given per trajectory. The advantage estimator: the group mean as
 * baseline, scaled by a constant (a toy, to show the shape). Both go into a catalogue
 * extended from the built-in one, so recipes decoded from JSON can name them too.
 *
 *   npx tsx examples/custom-reward.ts            (a short real training run)
 */
import { Schema } from "effect"
import { customTrajectoryReward, perTrajectory, policyLosses, returnEstimators, sampleFilters, shapers } from "@turnwise/core"
import type { AdvantageEstimator } from "@turnwise/core"
import { builtinCatalogue, extend, Recipe, use } from "@turnwise/dsl"
import { train } from "@turnwise/cli"

/** Reward: outcome minus a cost per extra tool call. */
export const conciseOutcome = customTrajectoryReward(
  "concise-outcome",
  "outcome score minus 0.05 per tool call after the first",
  (trajectory) => {
    const calls = trajectory.turns.filter((turn) => turn.toolCall !== null).length
    return trajectory.outcome.score - 0.05 * Math.max(0, calls - 1)
  },
)

/** Advantage: (return - group mean) * scale. */
export const scaledBaseline: AdvantageEstimator<"trajectory", "trajectory", { readonly scale: number }> = {
  name: "scaled-baseline",
  summary: "return minus the group mean, times a constant",
  options: Schema.Struct({ scale: Schema.Finite }),
  defaults: { scale: 1 },
  inputLevel: "trajectory",
  outputLevel: "trajectory",
  run: ({ returns }, { scale }) =>
    perTrajectory(
      "advantage",
      returns.values.map((group) => {
        const mean = group.reduce((a, b) => a + b, 0) / group.length
        return group.map((r) => (r - mean) * scale)
      }),
    ),
}

/** The built-in catalogue plus ours. */
export const catalogue = extend(builtinCatalogue, {
  reward: { "concise-outcome": conciseOutcome },
  advantage: { "scaled-baseline": scaledBaseline },
})

/** A recipe using both. */
export const concise = Recipe.make({
  name: "concise",
  reward: use(conciseOutcome),
  shaper: use(shapers["none-trajectory"]),
  returns: use(returnEstimators.identity),
  advantage: use(scaledBaseline, { scale: 2 }),
  filter: use(sampleFilters.none),
  loss: use(policyLosses.grpo),
})

/** Its JSON form decodes against the extended catalogue (and only against it). */
export const roundTrip = () => Recipe.decode(JSON.parse(JSON.stringify(Recipe.encode(concise))), catalogue)

/** Train it briefly on the built-in task. */
export const main = async (options: { readonly outDir: string; readonly steps: number; readonly init?: string }) =>
  train(Recipe.derive(concise, { name: "concise", rollout: { groupSize: 4 } }), {
    outDir: options.outDir,
    run: {
      train: { steps: options.steps, promptsPerStep: 2, evalEvery: 0, checkpointEvery: 0 },
      task: { evalCount: 8, trainCount: 50 },
      model: { init: options.init ?? "" },
    },
  })

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await main({ outDir: "runs/example-custom-reward", steps: 5, init: "assets/warm-start" })
  console.log(`accuracy before ${result.before["outcome/accuracy"]}, after ${result.after["outcome/accuracy"]}; report ${result.reportPath}`)
}
