import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import { shapers, toTrainingSequence } from "@turnwise/core"
import type { Batch } from "@turnwise/core"
import { problemsForStep, Recipe, rollout, trainStep, use } from "@turnwise/dsl"
import type { RecipeType } from "@turnwise/dsl"
import gtpo from "../../recipes/gtpo.js"
import grpo from "../../recipes/grpo.js"
import { fakeServices, fakeTokenizer, makeWorld, toyTask as task } from "./fakes.js"
import type { ToyProblem as P } from "./fakes.js"
import type { Script } from "./fakes.js"

const problems: ReadonlyArray<P> = [
  { id: "a", question: "6*7=?", answer: "42" },
  { id: "b", question: "3+4=?", answer: "7" },
]

const run = <A, E>(script: Script, effect: Effect.Effect<A, E, never>) => Effect.runPromise(effect)

const rolloutWith = async (script: Script, config: Partial<typeof gtpo.rollout> = {}) => {
  const world = makeWorld()
  const batch = await Effect.runPromise(
    Effect.scoped(rollout(task, problems, { ...gtpo.rollout, groupSize: 2, ...config }, { seed: 1, step: 0 })).pipe(
      Effect.provide(fakeServices(script, world)),
    ),
  )
  return { batch, world }
}

// Row r: problem floor(r / 2). Row 0 solves with one call; row 1 answers wrongly after a
// malformed call; row 2 calls, then stops without answering; row 3 keeps calling.
const script: Script = (row, turn) => {
  if (row === 0) return ["<code>6*7</code>", "<answer>42</answer>"][turn] ?? null
  if (row === 1) return ["<code>6*7", "<answer>41</answer>"][turn] ?? null
  if (row === 2) return turn === 0 ? "<code>3+4</code>" : null
  return "<code>3+4</code>"
}

describe("rollout", () => {
  it("records turns, feedback, finish reasons and outcomes", async () => {
    const { batch } = await rolloutWith(script, { maxTurns: 3, maxNewTokensPerTurn: 32 })
    const [t0, t1] = batch.groups[0]!.trajectories
    const [t2, t3] = batch.groups[1]!.trajectories
    expect(t0!.turns.map((t) => t.text)).toEqual(["<code>6*7</code>", "<answer>42</answer>"])
    expect(t0!.turns[0]!.toolCall).toEqual({ language: "js", code: "6*7" })
    expect(t0!.turns[0]!.feedbackText).toBe("\n<output>42</output>\n")
    expect(t0!.turns[0]!.toolStatus).toBe("ok")
    expect(t0!.finishReason).toBe("answer")
    expect(t0!.outcome).toEqual({ correct: true, score: 1 })

    expect(t1!.turns[0]!.malformed).toBe("unterminated")
    expect(t1!.turns[0]!.feedbackText).toMatch(/^\n<output>Error: malformed tool call/)
    expect(t1!.finishReason).toBe("answer")
    expect(t1!.outcome.correct).toBe(false)

    expect(t2!.finishReason).toBe("no-answer")
    expect(t2!.turns).toHaveLength(2)
    expect(t3!.finishReason).toBe("turn-budget")
    expect(t3!.turns).toHaveLength(3)
    expect(batch.groups.map((g) => g.groupId)).toEqual(["s0-a", "s0-b"])
  })

  it("keeps the exact sampled ids: the session's tokens are the trajectory's tokens", async () => {
    const { batch, world } = await rolloutWith(script, { maxTurns: 3, maxNewTokensPerTurn: 32 })
    batch.groups.forEach((group, g) =>
      group.trajectories.forEach((trajectory, i) => {
        const sequence = toTrainingSequence(trajectory, trajectory.turns.map(() => 0))
        expect(sequence.tokens).toEqual(world.sessionTokens[g * 2 + i])
        expect(sequence.tokens[0]).toBe(fakeTokenizer.bos)
      })
    )
  })

  it("stops at the token budget and cuts the turn there", async () => {
    const { batch } = await rolloutWith(() => "<code>1+2+3+4+5+6+7</code>", { maxTokens: 40, maxTurns: 4, maxNewTokensPerTurn: 64 })
    for (const trajectory of batch.groups.flatMap((g) => g.trajectories)) {
      const used = trajectory.turns.reduce((n, t) => n + t.policyTokens.length + t.feedbackTokens.length, 0)
      expect(used).toBeLessThanOrEqual(40)
      expect(trajectory.finishReason).toBe("token-budget")
    }
  })

  it("runs tool calls of different trajectories concurrently", async () => {
    const { world } = await rolloutWith(() => "<code>1+1</code>", { maxTurns: 1 })
    expect(world.sandboxCalls).toHaveLength(4)
    expect(world.maxConcurrentCalls).toBe(4)
  })
})

describe("trainStep", () => {
  const stepWith = async (recipe: RecipeType) => {
    const world = makeWorld()
    const result = await run(
      script,
      trainStep(Recipe.derive(recipe, { name: "t", rollout: { groupSize: 2, maxTurns: 3, maxNewTokensPerTurn: 32 } }), task, problems, { step: 0, seed: 3 })
        .pipe(
          Effect.provide(fakeServices(script, world)),
        ),
    )
    return { result, world }
  }

  it("trains on policy tokens only, with GTPO's turn advantages", async () => {
    const { result, world } = await stepWith(gtpo)
    expect(world.trained).toHaveLength(1)
    const { sequences, options } = world.trained[0]!
    expect(options.temperature).toBe(1)
    expect(sequences).toHaveLength(4)
    const batch: Batch = result.batch
    sequences.forEach((sequence, k) => {
      const trajectory = batch.groups[Math.floor(k / 2)]!.trajectories[k % 2]!
      const policyTokens = trajectory.turns.reduce((n, t) => n + t.policyTokens.length, 0)
      expect(sequence.mask.reduce((a, b) => a + b, 0)).toBe(policyTokens)
      sequence.mask.forEach((m, j) => {
        if (m === 0) expect(sequence.advantages[j]).toBe(0)
      })
    })
    // Group "a": row 0 succeeded, row 1 failed -> the success's tokens get positive advantages, the failure's negative.
    expect(Math.min(...sequences[0]!.advantages.filter((_, j) => sequences[0]!.mask[j] === 1))).toBeGreaterThan(0)
    expect(Math.max(...sequences[1]!.advantages.filter((_, j) => sequences[1]!.mask[j] === 1))).toBeLessThan(0)
    // Group "b": nobody answered correctly, but row 2 (no-answer after a call) and row 3 (turn budget) differ only in turn count.
    expect(result.metrics["outcome/accuracy"]).toBeCloseTo(0.25)
    expect(result.metrics["tool/calls_per_trajectory"]).toBeCloseTo((1 + 1 + 1 + 3) / 4)
    expect(result.metrics["tool/error_rate"]).toBeCloseTo(1 / 6)
    // Group "a" is mixed, group "b" all wrong: half the groups have all-equal outcomes.
    expect(result.metrics["groups/all_equal_frac"]).toBe(0.5)
    // Per-turn-index advantage statistics of what was trained on: turn 1's tokens are the first advantage of each sequence.
    const firstTurn = sequences.map((sq) => sq.advantages[sq.mask.indexOf(1)]!)
    const mean = firstTurn.reduce((a, b) => a + b, 0) / firstTurn.length
    expect(result.metrics["advantage/turn1_mean"]).toBeCloseTo(mean, 10)
    expect(result.metrics["advantage/turn1_std"]).toBeCloseTo(Math.sqrt(firstTurn.reduce((a, v) => a + (v - mean) ** 2, 0) / firstTurn.length), 10)
  })

  it("GRPO gives every policy token of a trajectory the same advantage", async () => {
    const { world } = await stepWith(grpo)
    const sequence = world.trained[0]!.sequences[0]!
    const values = new Set(sequence.advantages.filter((_, j) => sequence.mask[j] === 1))
    expect(values.size).toBe(1)
    expect([...values][0]).toBeGreaterThan(0)
  })

  it("asks each component what it needs: the loss how to weight micro-batches, the shaper whether it compares by the policy's embedding", async () => {
    const token = await stepWith(gtpo)
    expect(token.world.trained[0]!.options.accumulation).toBe("tokens")
    expect(token.world.embedded).toEqual([])
    const sequence = await stepWith(grpo)
    expect(sequence.world.trained[0]!.options.accumulation).toBe("sequences")
    const byPolicy = await stepWith(Recipe.derive(gtpo, { name: "gtpo-policy-embedding", shaper: use(shapers["code-similarity"], { embedding: "policy" }) }))
    expect(byPolicy.world.embedded).toHaveLength(1)
    expect(byPolicy.world.embedded[0]).toContain("6*7")
  })

  it("refuses to train at temperature 0", async () => {
    const world = makeWorld()
    const exit = await Effect.runPromiseExit(
      trainStep(Recipe.derive(gtpo, { name: "greedy", rollout: { temperature: 0 } }), task, problems, { step: 0, seed: 1 }).pipe(
        Effect.provide(fakeServices(script, world)),
      ),
    )
    expect(exit._tag).toBe("Failure")
    expect(JSON.stringify(exit)).toMatch(/temperature 0/)
  })
})

describe("problemsForStep", () => {
  it("is a deterministic walk over a seeded permutation", () => {
    const items = Array.from({ length: 10 }, (_, i) => i)
    const epoch = [0, 1, 2, 3, 4].flatMap((step) => problemsForStep(items, 2, step, 7))
    expect([...epoch].sort((a, b) => a - b)).toEqual(items)
    expect(problemsForStep(items, 2, 3, 7)).toEqual(problemsForStep(items, 2, 3, 7))
    expect(epoch).not.toEqual(items)
  })
})

describe("service stages", () => {
  it("are values with a name, a config Schema that accepts the recipe's section, and an Effect implementation", async () => {
    const { Schema } = await import("effect")
    const { multiTurnRollout, policyUpdate } = await import("@turnwise/dsl")
    expect(multiTurnRollout.name).toBe("multi-turn-rollout")
    expect(Schema.decodeUnknownSync(multiTurnRollout.config)(gtpo.rollout)).toEqual(gtpo.rollout)
    expect(() => Schema.decodeUnknownSync(policyUpdate.config)({ ...gtpo.optimizer, lr: -1 })).toThrow(/lr/)
    const world = makeWorld()
    const loss = () => {
      throw new Error("not called by the fake policy")
    }
    const report = await Effect.runPromise(
      policyUpdate.run(gtpo.optimizer, { sequences: [], loss, temperature: 0.7, accumulation: "sequences" }).pipe(Effect.provide(fakeServices(script, world))),
    )
    expect(report.metrics["actor/pg_loss"]).toBe(0.5)
    expect(world.trained[0]!.options).toMatchObject({ temperature: 0.7, accumulation: "sequences" })
  })
})
