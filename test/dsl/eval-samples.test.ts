import { describe, expect, it } from "vitest"
import { Effect, Layer } from "effect"
import { evaluate, MetricsSink, Policy, trainLoop } from "@turnwise/dsl"
import type { MetricsRecord } from "@turnwise/dsl"
import gtpo from "../../recipes/gtpo.js"
import { fakeServices, makeWorld, toyTask as task } from "./fakes.js"
import type { ToyProblem as P } from "./fakes.js"
import type { FakeWorld } from "./fakes.js"

const problems: ReadonlyArray<P> = [
  { id: "a", question: "6*7=?", answer: "42" },
  { id: "b", question: "3+4=?", answer: "7" },
  { id: "c", question: "2+2=?", answer: "4" },
]

const k = 4
// Greedy: only problem a is solved. Samples (k per problem): a 4 of 4, b 1 of 4, c 0 of 4.
const greedyCorrect = [true, false, false]
const sampledCorrect = [4, 1, 0]

/** The fake policy writes an answer at once; which row is correct depends on whether the session is the greedy pass (one row per problem) or the sampled one. */
const scriptFor = (world: FakeWorld) => (row: number, turn: number): string | null => {
  if (turn > 0) return null
  const rows = world.sessionTokens.length
  const correct = rows === problems.length ? greedyCorrect[row]! : row % k < sampledCorrect[Math.floor(row / k)]!
  const problem = problems[rows === problems.length ? row : Math.floor(row / k)]!
  return `<answer>${correct ? problem.answer : "wrong"}</answer>`
}

/** The fake services, with each session's seed and each generation's temperature recorded. */
const recordingServices = (seen: { seeds: Array<number>; temperatures: Array<number> }, sink: Layer.Layer<MetricsSink> = MetricsSink.none) => {
  const world = makeWorld()
  const base = fakeServices(scriptFor(world), world)
  const recordingPolicy = Layer.effect(
    Policy,
    Effect.gen(function*() {
      const inner = yield* Policy
      return {
        ...inner,
        session: (rows: number, seed: number) =>
          inner.session(rows, seed).pipe(
            Effect.map((session) => {
              seen.seeds.push(seed)
              return {
                ...session,
                generate: (active: ReadonlyArray<number>, options: Parameters<typeof session.generate>[1]) => {
                  seen.temperatures.push(options.temperature)
                  return session.generate(active, options)
                },
              }
            }),
          ),
      }
    }),
  ).pipe(Layer.provide(base))
  return Layer.mergeAll(base, sink, recordingPolicy)
}

const recipe = { ...gtpo, rollout: { ...gtpo.rollout, temperature: 0.7, maxTurns: 2 } }

describe("evaluate with samples (pass@k)", () => {
  it("reports greedy accuracy, pass@k and pass@1 of k samples per problem at the recipe's temperature, from a fixed seed", async () => {
    const seen = { seeds: [] as Array<number>, temperatures: [] as Array<number> }
    const result = await Effect.runPromise(evaluate(recipe, task, problems, { seed: 5, samples: k }).pipe(Effect.provide(recordingServices(seen))))
    expect(result.metrics["outcome/accuracy"]).toBeCloseTo(1 / 3, 12)
    expect(result.sampled).toEqual({ k, correct: sampledCorrect })
    // pass@4 with n = k = 4 is "any correct": a and b. pass@1 is the mean of 4/4, 1/4, 0/4.
    expect(result.metrics["eval/pass@4"]).toBeCloseTo(2 / 3, 12)
    expect(result.metrics["eval/pass@1"]).toBeCloseTo((1 + 0.25 + 0) / 3, 12)
    expect(result.metrics["eval/samples"]).toBe(4)
    expect(result.batch.groups.map((g) => g.trajectories.length)).toEqual([1, 1, 1])
    // Greedy pass at temperature 0, then the samples at the recipe's 0.7, each from a seed fixed by `seed`.
    expect(seen.temperatures).toEqual([0, 0.7])
    expect(seen.seeds).toHaveLength(2)
    const again = { seeds: [] as Array<number>, temperatures: [] as Array<number> }
    await Effect.runPromise(evaluate(recipe, task, problems, { seed: 5, samples: k }).pipe(Effect.provide(recordingServices(again))))
    expect(again.seeds).toEqual(seen.seeds)
    expect(seen.seeds[1]).not.toBe(seen.seeds[0])
  })

  it("splits the sampled pass into parts of at most batchSize rows and keeps the problems' order", async () => {
    const seen = { seeds: [] as Array<number>, temperatures: [] as Array<number> }
    const result = await Effect.runPromise(
      evaluate(recipe, task, problems, { seed: 5, samples: k, batchSize: 8 }).pipe(Effect.provide(recordingServices(seen))),
    )
    // Greedy: one part of 3 rows; samples: 2 problems (8 rows), then 1.
    expect(seen.seeds).toHaveLength(3)
    expect(result.sampled?.correct).toEqual(sampledCorrect)
  })

  it("adds nothing without samples, and refuses samples at a greedy rollout temperature", async () => {
    const seen = { seeds: [] as Array<number>, temperatures: [] as Array<number> }
    const greedy = await Effect.runPromise(evaluate(recipe, task, problems, { seed: 5 }).pipe(Effect.provide(recordingServices(seen))))
    expect(greedy.sampled).toBeUndefined()
    expect(Object.keys(greedy.metrics).filter((name) => name.startsWith("eval/"))).toEqual([])
    const cold = { ...recipe, rollout: { ...recipe.rollout, temperature: 0 } }
    const exit = await Effect.runPromiseExit(evaluate(cold, task, problems, { seed: 5, samples: 2 }).pipe(Effect.provide(recordingServices(seen))))
    expect(String(exit)).toMatch(/pass@2 samples at the recipe's rollout temperature, which is 0/)
  })

  it("logs pass@k with every evaluation of the training loop", async () => {
    const records: Array<MetricsRecord> = []
    const seen = { seeds: [] as Array<number>, temperatures: [] as Array<number> }
    await Effect.runPromise(
      trainLoop(recipe, task, {
        trainProblems: problems,
        evalProblems: problems,
        steps: 2,
        promptsPerStep: 1,
        seed: 3,
        evalEvery: 1,
        checkpointEvery: 0,
        resume: false,
        evalSamples: k,
      }).pipe(Effect.provide(recordingServices(seen, MetricsSink.memory(records)))),
    )
    const evals = records.filter((r) => r.phase === "eval")
    expect(evals.map((r) => r.step)).toEqual([1, 2])
    for (const record of evals) {
      expect(record.metrics["eval/pass@4"]).toBeCloseTo(2 / 3, 12)
      expect(record.metrics["eval/pass@1"]).toBeCloseTo(5 / 12, 12)
    }
  })
})
