/** The shipped recipes by name (what `turnwise train <name>` accepts besides a file path). */
import type { RecipeType } from "@turnwise/dsl"
import { gtpoGamma1, gtpoNoShaping, gtpoTrajectoryReward } from "./ablations.js"
import dapo from "./dapo.js"
import drGrpo from "./dr-grpo.js"
import gtpo from "./gtpo.js"
import grpo from "./grpo.js"

/** The shipped recipes, keyed by their names. */
export const recipes = {
  gtpo,
  grpo,
  "dr-grpo": drGrpo,
  dapo,
  "gtpo-no-shaping": gtpoNoShaping,
  "gtpo-gamma1": gtpoGamma1,
  "gtpo-trajectory-reward": gtpoTrajectoryReward,
} as const satisfies Readonly<Record<string, RecipeType>>

/** The name of a shipped recipe. */
export type ShippedRecipeName = keyof typeof recipes

/** The names of the shipped recipes, in the order above. */
export const shippedRecipeNames = Object.keys(recipes) as ReadonlyArray<ShippedRecipeName>

/** True when `name` names a shipped recipe. */
export const isShippedRecipe = (name: string): name is ShippedRecipeName => Object.hasOwn(recipes, name)
