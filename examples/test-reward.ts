/**
 * Program synthesis with a test-based reward: "the model writes a function; the
 * reward is how many of my tests pass".
 *
 * The task grades each final answer in the sandbox against the problem's hidden
 * tests and stores the pass fraction as `outcome.score` (and all-pass as
 * `outcome.correct`). Rewards read it from there, so a custom reward is one function
 * over the trajectory. Two recipes:
 *
 * - `gtpoTests`: GTPO with the catalogue's `tests-passed` reward (the pass fraction on
 *   the last turn, format penalties per turn).
 * - `gtpoTestsBonus`: the same with a custom reward: the pass fraction, plus 0.5 when
 *   every test passes, minus 0.05 for each tool call after the first.
 *
 *   npx tsx examples/test-reward.ts            (a short real training run)
 */
import { customTurnReward, rewardAssigners } from "@turnwise/core"
import { Recipe, use } from "@turnwise/dsl"
import { recipes } from "@turnwise/recipes"
import { train } from "@turnwise/cli"

/** GTPO with the built-in test-pass reward. */
export const gtpoTests = Recipe.derive(recipes.gtpo!, { name: "gtpo-tests", reward: use(rewardAssigners["tests-passed"]) })

/** A custom reward: pass fraction + 0.5 for all-pass - 0.05 per extra tool call, on the last turn. */
export const passBonus = customTurnReward(
  "tests-passed-bonus",
  "pass fraction + 0.5 if all tests pass - 0.05 per tool call after the first, on the last turn",
  (trajectory) => {
    const calls = trajectory.turns.filter((turn) => turn.toolCall !== null).length
    const last = trajectory.outcome.score + (trajectory.outcome.correct ? 0.5 : 0) - 0.05 * Math.max(0, calls - 1)
    return trajectory.turns.map((_, j) => (j === trajectory.turns.length - 1 ? last : 0))
  },
)

/** GTPO with the custom reward. */
export const gtpoTestsBonus = Recipe.derive(recipes.gtpo!, { name: "gtpo-tests-bonus", reward: use(passBonus) })

/** Train a recipe briefly on the built-in program-synthesis task. */
export const main = async (options: { readonly recipe: typeof gtpoTests; readonly outDir: string; readonly steps: number; readonly init?: string }) =>
  train(Recipe.derive(options.recipe, { name: options.recipe.name, rollout: { groupSize: 4 } }), {
    outDir: options.outDir,
    run: {
      train: { steps: options.steps, promptsPerStep: 2, evalEvery: 0, checkpointEvery: 0 },
      task: { kind: "program", evalCount: 8, trainCount: 50 },
      model: { init: options.init ?? "" },
    },
  })

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await main({ recipe: gtpoTestsBonus, outDir: "runs/example-test-reward", steps: 3, init: "assets/warm-start" })
  console.log(`tests passed before ${result.before["outcome/score"]}, after ${result.after["outcome/score"]}; report ${result.reportPath}`)
}
