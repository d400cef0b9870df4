/**
 * GRPO, the paper's baseline: one outcome reward per trajectory (the min rule of
 * accuracy and format), group-relative z-scores, clipped surrogate averaged per
 * sequence then over sequences.
 */
import { advantageEstimators, policyLosses, returnEstimators, rewardAssigners, sampleFilters, shapers } from "@turnwise/core"
import { Recipe, use } from "@turnwise/dsl"

export default Recipe.make({
  name: "grpo",
  description: "GRPO: trajectory outcome reward, group-relative advantage",
  reward: use(rewardAssigners["trajectory-outcome"]),
  shaper: use(shapers["none-trajectory"]),
  returns: use(returnEstimators.identity),
  advantage: use(advantageEstimators.grpo),
  filter: use(sampleFilters.none),
  loss: use(policyLosses.grpo),
})
