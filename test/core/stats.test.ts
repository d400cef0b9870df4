import { describe, expect, it } from "vitest"
import { AlgorithmInputError } from "../../packages/core/src/errors.js"
import { Rng } from "../../packages/core/src/rng.js"
import { bootstrapInterval, passAtK } from "../../packages/core/src/stats.js"

describe("bootstrapInterval", () => {
  it("gives the table's mean, and a point interval when every entry is equal", () => {
    const ci = bootstrapInterval([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], { seed: 3 })
    expect(ci).toEqual({ mean: 0.5, lo: 0.5, hi: 0.5, level: 0.95 })
    expect(bootstrapInterval([[1, 0, 0, 1], [1, 1, 1, 0]]).mean).toBe(0.625)
  })

  it("matches the normal interval of a proportion over problems (one seed, 400 problems at 0.5)", () => {
    const rng = Rng.fromSeed(11)
    const row = Array.from({ length: 400 }, () => (rng.next() < 0.5 ? 1 : 0))
    const ci = bootstrapInterval([row], { seed: 1, resamples: 4000 })
    const p = ci.mean
    const half = 1.96 * Math.sqrt((p * (1 - p)) / 400) // about 0.049
    expect(ci.lo).toBeLessThan(p)
    expect(ci.hi).toBeGreaterThan(p)
    expect(Math.abs(ci.hi - ci.lo - 2 * half)).toBeLessThan(0.2 * 2 * half)
  })

  it("resamples seeds too: seeds that disagree widen the interval that problems alone would give", () => {
    // Seed 0 solves everything, seed 1 nothing: every column averages 0.5, so only the
    // rows (seeds) carry the variation.
    const table = [Array.from({ length: 50 }, () => 1), Array.from({ length: 50 }, () => 0)]
    const ci = bootstrapInterval(table, { seed: 2 })
    expect(ci.mean).toBe(0.5)
    expect(ci.lo).toBe(0)
    expect(ci.hi).toBe(1)
  })

  it("keeps the pairing of a table of differences: a constant paired gain has a point interval", () => {
    const rng = Rng.fromSeed(5)
    const a = [0, 1].map(() => Array.from({ length: 60 }, () => (rng.next() < 0.4 ? 1 : 0)))
    const b = a.map((row) => row.map((v) => v + 0.1))
    const differences = b.map((row, s) => row.map((v, p) => v - a[s]![p]!))
    const ci = bootstrapInterval(differences, { seed: 1 })
    expect(ci.mean).toBeCloseTo(0.1, 12)
    expect(ci.hi - ci.lo).toBeLessThan(1e-12)
    // Unpaired, the same two recipes overlap widely.
    const ia = bootstrapInterval(a, { seed: 1 })
    expect(ia.hi - ia.lo).toBeGreaterThan(0.1)
  })

  it("is reproducible for a seed and honours the level", () => {
    const table = [[1, 0, 1, 1, 0, 1, 0, 0, 1, 1], [0, 0, 1, 1, 0, 1, 1, 0, 1, 0]]
    expect(bootstrapInterval(table, { seed: 9 })).toEqual(bootstrapInterval(table, { seed: 9 }))
    const wide = bootstrapInterval(table, { seed: 9, level: 0.99 })
    const narrow = bootstrapInterval(table, { seed: 9, level: 0.5 })
    expect(wide.lo).toBeLessThan(narrow.lo)
    expect(wide.hi).toBeGreaterThan(narrow.hi)
  })

  it("refuses ragged, empty or non-finite tables, naming the place", () => {
    expect(() => bootstrapInterval([[1, 0], [1]])).toThrow(AlgorithmInputError)
    expect(() => bootstrapInterval([[1, 0], [1]])).toThrow(/values\[1\] has 1 entries, values\[0\] has 2/)
    expect(() => bootstrapInterval([])).toThrow(/no rows/)
    expect(() => bootstrapInterval([[]])).toThrow(/no entries/)
    expect(() => bootstrapInterval([[1, Number.NaN]])).toThrow(/values\[0\]\[1\].*NaN/)
    expect(() => bootstrapInterval([[1]], { level: 1 })).toThrow(/level/)
  })
})

describe("passAtK", () => {
  it("matches 1 - C(n-c,k)/C(n,k) computed by hand", () => {
    expect(passAtK(4, 1, 2)).toBeCloseTo(1 - 3 / 6, 12) // C(3,2) = 3, C(4,2) = 6
    expect(passAtK(6, 2, 3)).toBeCloseTo(1 - 4 / 20, 12) // C(4,3) = 4, C(6,3) = 20
    expect(passAtK(10, 3, 5)).toBeCloseTo(1 - 21 / 252, 12) // C(7,5) = 21, C(10,5) = 252
    expect(passAtK(8, 1, 4)).toBeCloseTo(1 - 35 / 70, 12) // C(7,4) = 35, C(8,4) = 70
  })

  it("is the fraction correct with k = 1, and 'any correct' with n = k", () => {
    expect(passAtK(5, 2, 1)).toBeCloseTo(0.4, 12)
    expect(passAtK(1000, 1, 1)).toBeCloseTo(0.001, 12)
    expect(passAtK(5, 0, 5)).toBe(0)
    expect(passAtK(5, 1, 5)).toBe(1)
    expect(passAtK(5, 5, 5)).toBe(1)
    expect(passAtK(3, 0, 1)).toBe(0)
  })

  it("is 1 when fewer than k samples are wrong (every draw of k holds a correct one)", () => {
    expect(passAtK(4, 2, 3)).toBe(1)
    expect(passAtK(10, 8, 3)).toBe(1)
  })

  it("agrees with exact binomials for larger n", () => {
    const choose = (n: number, k: number): bigint => {
      if (k > n) return 0n
      let result = 1n
      for (let i = 0; i < k; i++) result = (result * BigInt(n - i)) / BigInt(i + 1)
      return result
    }
    for (const [n, c, k] of [[100, 10, 10], [200, 3, 50], [64, 20, 16]] as const) {
      const exact = 1 - Number((choose(n - c, k) * 10n ** 15n) / choose(n, k)) / 1e15
      expect(passAtK(n, c, k)).toBeCloseTo(exact, 12)
    }
  })

  it("grows with k for a fixed sample", () => {
    const values = [1, 2, 3, 4, 5, 6].map((k) => passAtK(6, 1, k))
    expect(values.map((v) => v.toFixed(6))).toEqual([1, 2, 3, 4, 5, 6].map((k) => (k / 6).toFixed(6)))
  })

  it("refuses impossible counts, naming the argument", () => {
    expect(() => passAtK(0, 0, 1)).toThrow(/n \(samples\)/)
    expect(() => passAtK(4, 5, 1)).toThrow(/c \(correct samples\).*\[0, 4\]/)
    expect(() => passAtK(4, 1, 5)).toThrow(/k must be.*\[1, n = 4\]/)
    expect(() => passAtK(4, 1, 0)).toThrow(/k must be/)
    expect(() => passAtK(4, 1.5, 2)).toThrow(/c \(correct/)
  })
})
