/** Dr.GRPO: GRPO without the std division and with a constant length normaliser. */
import { advantageEstimators, policyLosses } from "@turnwise/core"
import { Recipe, use } from "@turnwise/dsl"
import grpo from "./grpo.js"

export default Recipe.derive(grpo, {
  name: "dr-grpo",
  description: "Dr.GRPO: group mean baseline without std, token sums over a constant",
  advantage: use(advantageEstimators["dr-grpo"]),
  loss: use(policyLosses["dr-grpo"]),
})
