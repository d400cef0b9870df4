/** The shipped recipes by name (what `turnwise train <name>` accepts besides a file path). */
import type { RecipeType } from "@turnwise/dsl"
import { gtpoGamma1, gtpoNoShaping, gtpoTrajectoryReward } from "./ablations.js"
import dapo from "./dapo.js"
import drGrpo from "./dr-grpo.js"
import gtpo from "./gtpo.js"
import grpo from "./grpo.js"

export const recipes: Readonly<Record<string, RecipeType>> = {
  gtpo,
  grpo,
  "dr-grpo": drGrpo,
  dapo,
  "gtpo-no-shaping": gtpoNoShaping,
  "gtpo-gamma1": gtpoGamma1,
  "gtpo-trajectory-reward": gtpoTrajectoryReward,
}
