/**
 * `model.init`: "auto" (the default) picks the shipped warm start only for the preset
 * and task kind it was made for; "" and explicit directories are taken as given.
 */
import { describe, expect, it } from "vitest"
import { recipes } from "@turnwise/recipes"
import { autoInit, resolveInit, shippedWarmStart } from "../../packages/cli/src/run/init.js"
import { defaultRunConfig, resolveRun } from "../../packages/cli/src/run/resolve.js"

const runWith = (...sets: ReadonlyArray<string>) => resolveRun(recipes.gtpo!, defaultRunConfig, { file: {}, sets }).run

describe("model.init", () => {
  it("defaults to \"auto\", which picks the shipped warm start for the compact arithmetic run and says so", async () => {
    expect(defaultRunConfig.model.init).toBe(autoInit)
    expect(shippedWarmStart).toBe("assets/warm-start")
    const { run, description } = await resolveInit(runWith())
    expect(run.model.init).toBe(shippedWarmStart)
    expect(description).toMatch(/^starting from the shipped warm start assets\/warm-start/)
  })

  it("\"auto\" starts from the initial weights when the preset or the task kind differs, or with model.path", async () => {
    for (const sets of [["model.preset=tiny"], ["model.preset=small"], ["task.kind=program", "task.levels=[1]"]]) {
      const { run, description } = await resolveInit(runWith(...sets))
      expect(run.model.init, sets.join(" ")).toBe("")
      expect(description).toMatch(
        /^starting from the initial weights of preset \w+ \(seed 0\): the shipped warm start assets\/warm-start is for preset compact and task kind arithmetic/,
      )
    }
    const pretrained = await resolveInit(runWith("model.path=models/q"))
    expect(pretrained.run.model.init).toBe("")
    expect(pretrained.description).toMatch(/^starting from the weights of models\/q/)
  })

  it("\"auto\" starts from the initial weights when there is no shipped warm start", async () => {
    const { run, description } = await resolveInit(runWith(), "/nonexistent/warm-start")
    expect(run.model.init).toBe("")
    expect(description).toMatch(/no warm start at \/nonexistent\/warm-start/)
  })

  it("takes \"\" and an explicit directory as given", async () => {
    const empty = await resolveInit(runWith("model.init="))
    expect(empty.run.model.init).toBe("")
    expect(empty.description).toMatch(/initial weights of preset compact .*model\.init is ""/)
    const explicit = await resolveInit(runWith("model.preset=tiny", "model.init=runs/x/checkpoints"))
    expect(explicit.run.model.init).toBe("runs/x/checkpoints")
    expect(explicit.description).toMatch(/checkpoint runs\/x\/checkpoints/)
  })
})
