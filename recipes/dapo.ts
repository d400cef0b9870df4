/** DAPO on top of GRPO: clip-higher, token-mean, and dropping groups whose outcomes all agree. */
import { policyLosses, sampleFilters } from "@turnwise/core"
import { Recipe, use } from "@turnwise/dsl"
import grpo from "./grpo.js"

export default Recipe.derive(grpo, {
  name: "dapo",
  description: "DAPO: clip-higher (0.2/0.28), token-mean, zero-variance group filtering",
  filter: use(sampleFilters["zero-variance"]),
  loss: use(policyLosses.dapo),
})
