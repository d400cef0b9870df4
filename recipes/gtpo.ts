/**
 * GTPO (Group Turn Policy Optimization), with the paper's defaults:
 * turn-level rewards (accuracy on the last turn, -0.1 format penalties), partial
 * credit for failed trajectories from code similarity (alpha 0.5), discounted returns
 * (gamma 0.9) normalised over the group, clipped surrogate with token-mean.
 */
import { advantageEstimators, policyLosses, returnEstimators, rewardAssigners, sampleFilters, shapers } from "@turnwise/core"
import { Recipe, use } from "@turnwise/dsl"

export default Recipe.make({
  name: "gtpo",
  description: "GTPO: turn-level rewards, code-similarity shaping, normalised discounted returns",
  reward: use(rewardAssigners["turn-level"]),
  shaper: use(shapers["code-similarity"], { alpha: 0.5 }),
  returns: use(returnEstimators.discounted, { gamma: 0.9 }),
  advantage: use(advantageEstimators["normalized-returns"], { scope: "group" }),
  filter: use(sampleFilters.none),
  loss: use(policyLosses["clipped-surrogate"]),
})
