import { describe, expect, it } from "vitest"
import { recipes } from "@turnwise/recipes"
import { Recipe } from "@turnwise/dsl"
import { defaultRunConfig, resolveRun } from "../../packages/cli/src/run/resolve.js"

describe("resolveRun routes --set overrides by their first key", () => {
  it("sends top-level run keys without a dot (backend, sandboxWorkers) to the run config", () => {
    const { run, recipe } = resolveRun(recipes.gtpo!, defaultRunConfig, {
      file: {},
      sets: ["backend=cpu", "sandboxWorkers=3", "model.path=/m", "rollout.groupSize=5"],
    })
    expect(run.backend).toBe("cpu")
    expect(run.sandboxWorkers).toBe(3)
    expect(run.model.path).toBe("/m")
    expect(recipe.rollout.groupSize).toBe(5)
    expect(Recipe.encode(recipe)).not.toHaveProperty("backend")
  })

  it("reports a bad backend as a run-config error, not as an unknown recipe key", () => {
    expect(() => resolveRun(recipes.gtpo!, defaultRunConfig, { file: {}, sets: ["backend=tpu"] })).toThrow(/backend/)
    expect(() => resolveRun(recipes.gtpo!, defaultRunConfig, { file: {}, sets: ["backend=tpu"] })).not.toThrow(/recipe keys/)
  })
})
