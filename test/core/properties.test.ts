/**
 * Properties over seeded random batches (uneven groups and turn counts, random
 * outcomes, code, malformed turns and tool-less turns).
 */
import { describe, expect, it } from "vitest"
import {
  broadcastToTurns,
  drGrpoAdvantages,
  grpoAdvantages,
  normalizedReturnAdvantages,
  reinforcePlusPlusAdvantages,
  rlooAdvantages,
} from "../../packages/core/src/advantages.js"
import { grpoDefaults, normalizedReturnsDefaults, reinforcePlusPlusDefaults } from "../../packages/core/src/advantages.js"
import type { Batch } from "../../packages/core/src/model.js"
import { discountedDefaults, discountedReturns, identityReturns } from "../../packages/core/src/returns.js"
import { trajectoryOutcomeDefaults, trajectoryOutcomeRewards, turnLevelDefaults, turnLevelRewards } from "../../packages/core/src/rewards.js"
import { codeSimilarityCredits, codeSimilarityDefaults, codeSimilarityTurnShaping } from "../../packages/core/src/shaping.js"
import { mean, populationStd } from "../../packages/core/src/stats.js"
import { perTrajectory, perTurn } from "../../packages/core/src/values.js"
import { expectClose, randomBatch, seeded } from "./batch-builders.js"

const seeds = Array.from({ length: 25 }, (_, k) => 1000 + k)

const randomTurnValues = (b: Batch, seed: number) => {
  const rng = seeded(seed)
  // A few repeated values so that some sets are constant (std 0).
  return b.groups.map((g) => g.trajectories.map((t) => t.turns.map(() => (rng.next() < 0.2 ? 1 : Math.round(rng.next() * 400 - 200) / 100))))
}

const randomTrajectoryValues = (b: Batch, seed: number) => {
  const rng = seeded(seed)
  return b.groups.map((g) => g.trajectories.map(() => (rng.next() < 0.3 ? 0 : Math.round(rng.next() * 300) / 100)))
}

/** A set normalised with eps = 0 has mean 0 and std 1, or is all 0 when it was constant. */
const expectStandardised = (set: ReadonlyArray<number>, original: ReadonlyArray<number>, where: string) => {
  expect(Math.abs(mean(set)), `mean at ${where}`).toBeLessThan(1e-9)
  const expectedStd = populationStd(original) > 1e-12 ? 1 : 0
  expect(Math.abs(populationStd(set) - expectedStd), `std at ${where}`).toBeLessThan(1e-9)
}

describe("normalised advantages have zero mean (and unit std) over their set", () => {
  it.each(seeds)("normalized-returns, every scope (seed %i)", (seed) => {
    const b = randomBatch(seed)
    const returns = perTurn("return", randomTurnValues(b, seed))
    const group = normalizedReturnAdvantages(b, returns, { ...normalizedReturnsDefaults, scope: "group", eps: 0 }).values
    const byTurn = normalizedReturnAdvantages(b, returns, { ...normalizedReturnsDefaults, scope: "turn-index", eps: 0 }).values
    const whole = normalizedReturnAdvantages(b, returns, { ...normalizedReturnsDefaults, scope: "batch", eps: 0 }).values
    const meanOnly = normalizedReturnAdvantages(b, returns, { ...normalizedReturnsDefaults, scope: "group", normalizeStd: false }).values
    expectStandardised(whole.flat(2), returns.values.flat(2), "batch")
    returns.values.forEach((rows, g) => {
      expectStandardised(group[g]!.flat(), rows.flat(), `group ${g}`)
      expect(Math.abs(mean(meanOnly[g]!.flat()))).toBeLessThan(1e-9)
      const longest = Math.max(...rows.map((r) => r.length))
      for (let j = 0; j < longest; j++) {
        const at = (table: ReadonlyArray<ReadonlyArray<number>>) => table.flatMap((row) => (j < row.length ? [row[j]!] : []))
        expectStandardised(at(byTurn[g]!), at(rows), `group ${g}, turn ${j}`)
      }
    })
  })

  it.each(seeds)("grpo, dr-grpo and rloo within each group; reinforce++ over the batch (seed %i)", (seed) => {
    const b = randomBatch(seed)
    const returns = perTrajectory("return", randomTrajectoryValues(b, seed))
    const grpo = grpoAdvantages(b, returns, { ...grpoDefaults, eps: 0 }).values
    const dr = drGrpoAdvantages(b, returns).values
    const rloo = rlooAdvantages(b, returns).values
    returns.values.forEach((row, g) => {
      expectStandardised(grpo[g]!, row, `group ${g}`)
      expect(Math.abs(mean(dr[g]!))).toBeLessThan(1e-9)
      expect(Math.abs(mean(rloo[g]!))).toBeLessThan(1e-9)
      // RLOO is Dr.GRPO scaled by G / (G - 1)
      const n = row.length
      if (n > 1) expectClose(rloo[g], dr[g]!.map((a) => (a * n) / (n - 1)), 1e-9)
    })
    expectStandardised(reinforcePlusPlusAdvantages(b, returns, { ...reinforcePlusPlusDefaults, eps: 0 }).values.flat(), returns.values.flat(), "batch")
    const baseline = reinforcePlusPlusAdvantages(b, returns, { ...reinforcePlusPlusDefaults, eps: 0, subtractGroupMean: true }).values.flat()
    expect(Math.abs(mean(baseline))).toBeLessThan(1e-9)
  })
})

describe("GTPO reduces to GRPO with one turn and no format penalties", () => {
  it.each(seeds)("turn-level + discounted + normalized-returns(group) = trajectory-outcome + identity + grpo (seed %i)", (seed) => {
    const b = randomBatch(seed, { maxTurns: 1, clean: true })
    for (const accuracy of ["binary", "score"] as const) {
      const gtpo = normalizedReturnAdvantages(
        b,
        discountedReturns(b, turnLevelRewards(b, { ...turnLevelDefaults, accuracy }), { ...discountedDefaults, gamma: 0.9 }),
        { ...normalizedReturnsDefaults, scope: "group" },
      )
      const grpo = broadcastToTurns(b, grpoAdvantages(b, identityReturns(b, trajectoryOutcomeRewards(b, { ...trajectoryOutcomeDefaults, accuracy }))))
      expectClose(gtpo.values, grpo.values, 1e-12)
    }
  })
})

describe("shaping", () => {
  it.each(seeds)("credit is in [0, alpha), only on failures in groups with a success, only on the last turn (seed %i)", (seed) => {
    const b = randomBatch(seed)
    const rng = seeded(seed + 7)
    const options = { ...codeSimilarityDefaults, alpha: rng.next() * 0.99, maxSimilarity: rng.next() * 0.99 }
    const rewards = turnLevelRewards(b)
    // the char-ngram embedding, and an adversarial one for which every code is identical
    for (const embed of [undefined, (codes: ReadonlyArray<string>) => codes.map(() => [1, 1])]) {
      const credits = codeSimilarityCredits(b, options, embed).values
      const shaped = codeSimilarityTurnShaping(b, rewards, options, embed).values
      b.groups.forEach((group, g) => {
        const anySuccess = group.trajectories.some((t) => t.outcome.correct)
        group.trajectories.forEach((t, i) => {
          const credit = credits[g]![i]!
          expect(credit).toBeGreaterThanOrEqual(0)
          expect(credit).toBeLessThan(options.alpha === 0 ? Number.MIN_VALUE : options.alpha)
          if (t.outcome.correct || !anySuccess) expect(credit).toBe(0)
          const before = rewards.values[g]![i]!
          const last = before.length - 1
          expect(shaped[g]![i]!.slice(0, last)).toEqual(before.slice(0, last))
          expect(shaped[g]![i]![last]).toBeCloseTo(before[last]! + credit, 12)
        })
      })
    }
  })
})

describe("discounted returns", () => {
  it.each(seeds)("equal suffix sums with gamma = 1 and sum_m gamma^(m-j) r_m in general (seed %i)", (seed) => {
    const b = randomBatch(seed)
    const rewards = perTurn("reward", randomTurnValues(b, seed))
    const gamma = seeded(seed).next()
    const undiscounted = discountedReturns(b, rewards, { ...discountedDefaults, gamma: 1 }).values
    const discounted = discountedReturns(b, rewards, { ...discountedDefaults, gamma }).values
    rewards.values.forEach((rows, g) =>
      rows.forEach((row, i) =>
        row.forEach((_, j) => {
          const tail = row.slice(j)
          expect(undiscounted[g]![i]![j]).toBeCloseTo(tail.reduce((s, r) => s + r, 0), 12)
          expect(discounted[g]![i]![j]).toBeCloseTo(tail.reduce((s, r, k) => s + gamma ** k * r, 0), 12)
        })
      )
    )
  })
})
