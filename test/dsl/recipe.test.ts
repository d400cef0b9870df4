import { describe, expect, it } from "vitest"
import { advantageEstimators, policyLosses, returnEstimators, rewardAssigners, sampleFilters, shapers } from "@turnwise/core"
import { builtinCatalogue, ConfigError, extend, Recipe, use } from "@turnwise/dsl"
import { recipes } from "../../recipes/index.js"
import gtpo from "../../recipes/gtpo.js"
import grpo from "../../recipes/grpo.js"

const thrown = (f: () => unknown): unknown => {
  try {
    f()
  } catch (error) {
    return error
  }
  throw new Error("expected a throw")
}

describe("Recipe.make", () => {
  it("fills rollout and optimizer defaults and validates stage options", () => {
    expect(gtpo.rollout.groupSize).toBe(8)
    expect(gtpo.returns.options).toMatchObject({ gamma: 0.9 })
    expect(gtpo.shaper.options).toMatchObject({ alpha: 0.5 })
    const error = thrown(() => use(returnEstimators.discounted, { gamma: 2 }))
    expect(error).toBeInstanceOf(ConfigError)
    expect(String((error as Error).message)).toMatch(/discounted/)
  })

  it("rejects illegal pipelines at compile time", () => {
    const illegal = () =>
      Recipe.make({
        name: "bad",
        reward: use(rewardAssigners["trajectory-outcome"]),
        shaper: use(shapers["none-trajectory"]),
        // @ts-expect-error discounted returns need per-turn rewards; this recipe assigns per-trajectory rewards
        returns: use(returnEstimators.discounted),
        advantage: use(advantageEstimators["normalized-returns"]),
        filter: use(sampleFilters.none),
        loss: use(policyLosses.grpo),
      })
    // The run-time twin of the check rejects it too (for recipes decoded from JSON).
    expect(() => illegal()).toThrow(/returns: takes turn-level rewards but the reward assigner gives trajectory-level rewards/)
  })

  it("rejects an advantage estimator whose input level does not match the returns", () => {
    const illegal = () =>
      Recipe.make({
        name: "bad2",
        reward: use(rewardAssigners["turn-level"]),
        shaper: use(shapers.none),
        returns: use(returnEstimators.discounted),
        // @ts-expect-error GRPO's estimator takes per-trajectory returns; discounted returns are per turn
        advantage: use(advantageEstimators.grpo),
        filter: use(sampleFilters.none),
        loss: use(policyLosses.grpo),
      })
    expect(() => illegal()).toThrow(/advantage: takes trajectory-level returns/)
  })

  it("derive replaces only the named stages", () => {
    const variant = Recipe.derive(gtpo, { name: "gtpo-g1", returns: use(returnEstimators.discounted, { gamma: 1 }) })
    expect(variant.returns.options).toMatchObject({ gamma: 1 })
    expect(Recipe.encode(variant).reward).toEqual(Recipe.encode(gtpo).reward)
    expect(Recipe.encode(variant).shaper).toEqual(Recipe.encode(gtpo).shaper)
    expect(gtpo.returns.options).toMatchObject({ gamma: 0.9 })
  })
})

describe("Recipe JSON", () => {
  it("every shipped recipe round-trips through JSON", () => {
    for (const recipe of Object.values(recipes)) {
      const json = JSON.stringify(Recipe.encode(recipe))
      const decoded = Recipe.decode(JSON.parse(json))
      expect(Recipe.encode(decoded)).toEqual(Recipe.encode(recipe))
      expect(decoded.returns.entry).toBe(recipe.returns.entry)
    }
  })

  it("GRPO and GTPO differ only in the stages they name", () => {
    const a = Recipe.encode(gtpo) as unknown as Record<string, unknown>
    const b = Recipe.encode(grpo) as unknown as Record<string, unknown>
    const differing = Object.keys(a).filter((key) => JSON.stringify(a[key]) !== JSON.stringify(b[key]))
    expect(differing.sort()).toEqual(["advantage", "description", "loss", "name", "returns", "reward", "shaper"])
    expect(a.rollout).toEqual(b.rollout)
    expect(a.optimizer).toEqual(b.optimizer)
  })

  it("names the path of an unknown key, an unknown component, a wrong type and a level mismatch", () => {
    const base = Recipe.encode(gtpo)
    const cases: Array<[unknown, RegExp]> = [
      [{ ...base, extra: 1 }, /config error at extra: unknown key/],
      [{ ...base, returns: { name: "discountd", options: {} } }, /returns\.name: unknown returns "discountd"; known: discounted, trajectory-sum, identity/],
      [{ ...base, returns: { name: "discounted", options: { gamma: "high" } } }, /returns\.options: .*gamma/],
      [{ ...base, returns: { name: "discounted", options: { gama: 0.5 } } }, /returns\.options: .*gama/],
      [{ ...base, rollout: { ...base.rollout, groupSize: 0 } }, /rollout: .*groupSize/],
      [{ ...base, advantage: { name: "grpo", options: {} } }, /recipe\.advantage: takes trajectory-level returns/],
    ]
    for (const [raw, pattern] of cases) {
      const error = thrown(() => Recipe.decode(raw))
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toMatch(pattern)
    }
  })

  it("refuses a malformed top level or stage by the path of the bad key", () => {
    const base = Recipe.encode(gtpo)
    const { reward: _reward, ...noReward } = base
    const cases: Array<[unknown, RegExp]> = [
      [[base], /^config error at recipe: expected an object$/],
      [
        { ...base, extra: 1, other: 2 },
        /^config error at extra: unknown key; recipe keys are name, description, reward, shaper, returns, advantage, filter, loss, rollout, optimizer$/,
      ],
      [{ ...base, name: "" }, /^config error at name: expected a non-empty string$/],
      [{ ...base, name: 3 }, /^config error at name: expected a non-empty string$/],
      [{ ...base, description: 3 }, /^config error at description: expected a string$/],
      [noReward, /^config error at reward: missing; expected \{ name, options \}$/],
      [{ ...base, shaper: "none" }, /^config error at shaper: expected \{ name, options \}$/],
      [{ ...base, loss: { ...base.loss, weight: 1 } }, /^config error at loss\.weight: unknown key; a stage has name and options$/],
      [{ ...base, filter: { name: 3, options: {} } }, /^config error at filter\.name: expected a string$/],
      [{ ...base, optimizer: [1] }, /^config error at optimizer: expected an object$/],
    ]
    for (const [raw, pattern] of cases) {
      const error = thrown(() => Recipe.decode(raw))
      expect(error, JSON.stringify(raw)).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toMatch(pattern)
    }
    const { description: _description, ...noDescription } = base
    expect(Recipe.decode(noDescription).description).toBe("")
  })

  it("applies --set overrides before decoding", () => {
    const raw = Recipe.applyOverrides(Recipe.encode(gtpo), ["returns.options.gamma=1", "rollout.groupSize=4", "loss.options.epsHigh=0.28"])
    const decoded = Recipe.decode(raw)
    expect(decoded.returns.options).toMatchObject({ gamma: 1 })
    expect(decoded.rollout.groupSize).toBe(4)
    expect(decoded.loss.options).toMatchObject({ epsHigh: 0.28 })
    expect(() => Recipe.decode(Recipe.applyOverrides(Recipe.encode(gtpo), ["rollout.groupSize=many"]))).toThrow(/rollout: .*groupSize/)
    expect(() => Recipe.applyOverrides(Recipe.encode(gtpo), ["name.first=x"])).toThrow(/name: is not an object/)
    expect(() => Recipe.applyOverrides(Recipe.encode(gtpo), ["gamma"])).toThrow(/expected key=value/)
  })
})

describe("Catalogue", () => {
  it("extend adds a user entry that recipes decoded from JSON can name, and refuses duplicates", () => {
    const doubled = { ...returnEstimators.identity, name: "doubled" }
    const mine = extend(builtinCatalogue, { returns: { doubled } })
    const raw = { ...Recipe.encode(grpo), returns: { name: "doubled", options: {} } }
    expect(Recipe.decode(raw, mine).returns.entry).toBe(doubled)
    expect(() => Recipe.decode(raw)).toThrow(/unknown returns "doubled"/)
    expect(() => extend(builtinCatalogue, { returns: { identity: returnEstimators.identity } })).toThrow(/already exists/)
    expect(() => extend(builtinCatalogue, { returns: { other: returnEstimators.identity } })).toThrow(/calls itself "identity"/)
  })
})
