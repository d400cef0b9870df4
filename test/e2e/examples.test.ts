import { describe, expect, it } from "vitest"
import { Recipe } from "@turnwise/dsl"
import { gtpoTests, gtpoTestsBonus, main, passBonus } from "../../examples/test-reward.js"
import { batch, expectClose } from "../core/batch-builders.js"
import { tempDir } from "./helpers.js"

describe("examples/test-reward.ts", () => {
  it("its custom reward is the pass fraction, +0.5 for all-pass, -0.05 per extra tool call, on the last turn", () => {
    const graded = batch([
      { correct: true, score: 1, turns: 3 },
      { correct: false, score: 0.4, turns: 1 },
    ])
    // 3 turns with a tool call each: 1 + 0.5 - 0.1; one turn: 0.4.
    expectClose(passBonus.run({ batch: graded }, {}).values, [[[0, 0, 1.4], [0.4]]])
    expect(Recipe.encode(gtpoTests).reward.name).toBe("tests-passed")
    expect(Recipe.encode(gtpoTestsBonus).reward.name).toBe("tests-passed-bonus")
  })

  it("trains on the program-synthesis task", async () => {
    const result = await main({ recipe: gtpoTestsBonus, outDir: tempDir("example-tests"), steps: 1, init: "assets/warm-start" })
    expect(result.steps).toBe(1)
    expect(result.after["batch/trajectories"]).toBe(8)
    expect(result.after["outcome/score"]).toBeGreaterThanOrEqual(0)
  }, 240_000)
})

describe("examples/sandbox.ts", () => {
  it("a session keeps its variables, a fresh call does not see them, a hang is a timeout observation", async () => {
    const { main: sandboxExample } = await import("../../examples/sandbox.js")
    const { session, fresh, service, hang } = await sandboxExample()
    expect(session).toMatchObject({ ok: true, value: "42" })
    expect(fresh).toMatchObject({ ok: false, kind: "error" })
    expect(fresh.ok ? "" : fresh.error).toMatch(/NameError: name 'x' is not defined/)
    expect(service).toMatchObject({ ok: true, value: "[1,4,9]" })
    expect(hang).toMatchObject({ ok: false, kind: "timeout" })
  }, 120_000)
})
