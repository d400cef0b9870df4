/**
 * Small builders of batches for the core algorithm tests: terse specs in, fully
 * formed (schema-valid) trajectories out, plus a seeded generator of random batches
 * for the property tests.
 */
import { AlgorithmInputError } from "../../packages/core/src/errors.js"
import type { Batch, Group, MalformedReason, Trajectory, Turn } from "../../packages/core/src/model.js"

export interface TurnSpec {
  /** Code of the tool call; null for a turn without one. Default: "print(1)". */
  readonly code?: string | null
  readonly malformed?: MalformedReason | null
  readonly policyTokens?: ReadonlyArray<number>
  readonly logprobs?: ReadonlyArray<number>
  readonly feedbackTokens?: ReadonlyArray<number>
}

export const turn = (spec: TurnSpec = {}): Turn => {
  const code = spec.code === undefined ? "print(1)" : spec.code
  const policyTokens = spec.policyTokens ?? [7]
  return {
    policyTokens,
    logprobs: spec.logprobs ?? policyTokens.map(() => -0.5),
    text: code === null ? "thinking" : "```python\n" + code + "\n```",
    toolCall: code === null ? null : { language: "python", code },
    malformed: spec.malformed ?? null,
    feedbackTokens: spec.feedbackTokens ?? [],
    feedbackText: "",
    answer: null,
  }
}

export interface TrajectorySpec {
  readonly correct: boolean
  /** Default: 1 when correct, else 0. */
  readonly score?: number
  /** Turn specs, or a number of default turns. */
  readonly turns: ReadonlyArray<TurnSpec> | number
  readonly promptTokens?: ReadonlyArray<number>
}

export const trajectory = (spec: TrajectorySpec, groupId = "g"): Trajectory => ({
  promptId: groupId,
  groupId,
  promptTokens: spec.promptTokens ?? [1, 2],
  turns: (typeof spec.turns === "number" ? Array.from({ length: spec.turns }, () => ({})) : spec.turns).map(turn),
  outcome: { correct: spec.correct, score: spec.score ?? (spec.correct ? 1 : 0) },
  finishReason: "answer",
})

export const group = (specs: ReadonlyArray<TrajectorySpec>, groupId = "g"): Group => ({
  groupId,
  promptId: groupId,
  trajectories: specs.map((s) => trajectory(s, groupId)),
})

export const batch = (...groups: ReadonlyArray<ReadonlyArray<TrajectorySpec>>): Batch => ({
  groups: groups.map((specs, g) => group(specs, `g${g}`)),
})

/** A tiny seeded generator (mulberry32) so property tests are reproducible. */
export const seeded = (seed: number) => {
  let s = seed >>> 0
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 15), z | 1)
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61)
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296
  }
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1))
  const pick = <T>(xs: ReadonlyArray<T>): T => xs[Math.floor(next() * xs.length)]!
  return { next, int, pick }
}

const snippets = ["x = 3 * 7\nprint(x)", "print(sum(range(10)))", "import math\nprint(math.sqrt(2))", "y = [i*i for i in range(5)]\nprint(y)", "print(17 % 5)"]

/**
 * A random batch: 1-4 groups of 1-5 trajectories of 1-4 turns, random outcomes,
 * code, malformed turns and turns without a tool call (unless `clean`).
 */
export const randomBatch = (seed: number, options: { readonly maxTurns?: number; readonly clean?: boolean } = {}): Batch => {
  const rng = seeded(seed)
  const maxTurns = options.maxTurns ?? 4
  return batch(
    ...Array.from({ length: rng.int(1, 4) }, () =>
      Array.from({ length: rng.int(1, 5) }, (): TrajectorySpec => {
        const correct = rng.next() < 0.4
        return {
          correct,
          score: correct ? 1 : rng.pick([0, 0, 0.25, 0.5]),
          turns: Array.from({ length: rng.int(1, maxTurns) }, (): TurnSpec => ({
            code: !options.clean && rng.next() < 0.2 ? null : rng.pick(snippets) + (rng.next() < 0.5 ? "\n# v" + rng.int(0, 9) : ""),
            malformed: !options.clean && rng.next() < 0.15 ? "syntax-error" : null,
            policyTokens: Array.from({ length: rng.int(1, 4) }, () => rng.int(3, 50)),
            feedbackTokens: Array.from({ length: rng.int(0, 3) }, () => rng.int(3, 50)),
          })),
        }
      })),
  )
}

/** Deep comparison of nested number arrays with an absolute tolerance. */
export const expectClose = (actual: unknown, expected: unknown, tolerance = 1e-9, path = "values"): void => {
  if (typeof expected === "number") {
    if (typeof actual !== "number" || !(Math.abs(actual - expected) <= tolerance)) {
      throw new Error(`${path}: expected ${expected}, got ${String(actual)}`)
    }
    return
  }
  if (!Array.isArray(expected) || !Array.isArray(actual) || actual.length !== expected.length) {
    throw new Error(`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`)
  }
  expected.forEach((e, k) => expectClose(actual[k], e, tolerance, `${path}[${k}]`))
}

/** Run f and return the AlgorithmInputError it throws; fails when it throws nothing or something else. */
export const thrown = (f: () => unknown): AlgorithmInputError => {
  try {
    f()
  } catch (error) {
    if (error instanceof AlgorithmInputError) return error
    throw error
  }
  throw new Error("expected an AlgorithmInputError, none was thrown")
}
