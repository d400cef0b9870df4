/**
 * The GTPO ablations compared in docs/RESULTS.md: each removes one of GTPO's parts.
 */
import { returnEstimators, rewardAssigners, shapers } from "@turnwise/core"
import { Recipe, use } from "@turnwise/dsl"
import gtpo from "./gtpo.js"

/** GTPO without code-similarity shaping. */
export const gtpoNoShaping = Recipe.derive(gtpo, { name: "gtpo-no-shaping", shaper: use(shapers.none) })

/** GTPO without discounting (gamma = 1). */
export const gtpoGamma1 = Recipe.derive(gtpo, { name: "gtpo-gamma1", returns: use(returnEstimators.discounted, { gamma: 1 }) })

/** GTPO with the trajectory-level outcome reward (min rule) placed on the last turn instead of turn-level rewards. */
export const gtpoTrajectoryReward = Recipe.derive(gtpo, { name: "gtpo-trajectory-reward", reward: use(rewardAssigners["outcome-on-last-turn"]) })
