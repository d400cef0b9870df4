/**
 * Reward shaping: GTPO's self-supervised partial credit for failed trajectories.
 *
 * A binary outcome gives a failed trajectory 0 whether it was close or hopeless.
 * Code-similarity shaping gives each failed trajectory i of a group with at least
 * one success credit
 *
 *     credit_i = alpha * min(maxSimilarity, mean_{p in P} max(0, cos(e(code_i), e(code_p))))
 *
 * where P is the group's successful trajectories (`outcome.correct`), code is
 * {@link trajectoryCode} and e an embedding (the built-in character n-gram one, or
 * the Embedder passed as `input.embed`, e.g. the policy's own hidden states). The
 * credit is added to the last turn's reward (level "turn") or to the trajectory's
 * reward (level "trajectory"). Successful trajectories, and groups without a success,
 * are left as they are.
 *
 * Because maxSimilarity < 1, credit < alpha: a failure never earns as much as a
 * success that earns 1 (the paper's alpha < 1 argument, made strict even for code
 * identical to a success's). A trajectory that ran no code has similarity 0 to
 * everything and is never passed to the embedder, so a model-based embedder is not
 * asked to embed the empty string.
 *
 * @category constructors
 */
import { Schema } from "effect"
import type { Embedder, Shaper } from "./component.js"
import { charNgramEmbedding, cosine } from "./embedding.js"
import { AlgorithmInputError } from "./errors.js"
import { trajectoryCode, type Batch } from "./model.js"
import { defaultsOf, setting } from "./setting.js"
import { mean, NoOptions } from "./stats.js"
import { assertNonEmptyBatch, assertTrajectoryShape, assertTurnShape, perTrajectory, perTurn, type PerTrajectory, type PerTurn } from "./values.js"

/** Options of the code-similarity shapers. */
export const CodeSimilarityOptions = Schema.Struct({
  alpha: setting(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1)), 0.5, "Credit scale, in [0, 1)"),
  maxSimilarity: setting(
    Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1)),
    0.9,
    "Cap on the mean similarity, in [0, 1), so that credit < alpha",
  ),
  embedding: setting(
    Schema.Literals(["char-ngram", "policy"]),
    "char-ngram",
    "char-ngram: the built-in lexical embedding (no model); policy: the policy's own hidden states, which the pipeline computes and passes in",
  ),
  ngram: setting(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)), 3, "Characters per n-gram of the char-ngram embedding"),
  dims: setting(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)), 2048, "Hash buckets of the char-ngram embedding"),
})
export type CodeSimilarityOptions = typeof CodeSimilarityOptions.Type

/** GTPO's defaults: alpha 0.5, similarity capped at 0.9, character trigrams in 2048 buckets. */
export const codeSimilarityDefaults: CodeSimilarityOptions = defaultsOf(CodeSimilarityOptions)

/**
 * The partial credit of each trajectory (0 for successes and for groups with no
 * success), as `credits[group][trajectory]`.
 *
 * @example
 * codeSimilarityCredits(batch).values // [[0, 0.31, 0], [0, 0]]
 */
export const codeSimilarityCredits = (
  batch: Batch,
  options: CodeSimilarityOptions = codeSimilarityDefaults,
  embed?: Embedder,
): PerTrajectory<"reward"> => {
  const fn = "codeSimilarityCredits"
  const o = options
  if (o.embedding === "policy" && embed === undefined) {
    throw new AlgorithmInputError({ fn, where: "option embedding", problem: `"policy" needs the policy's embedder passed as embed (the pipeline does this)` })
  }
  assertNonEmptyBatch(fn, batch)
  const embedder = embed ?? charNgramEmbedding({ n: o.ngram, dims: o.dims })

  // Collect every code that needs a vector, then embed them in one call: a
  // model-based embedder runs one forward pass instead of one per trajectory.
  const codes: string[] = []
  const slots = batch.groups.map((group) => {
    if (!group.trajectories.some((t) => t.outcome.correct)) return null
    return group.trajectories.map((t) => {
      const code = trajectoryCode(t)
      if (code.length === 0) return -1
      codes.push(code)
      return codes.length - 1
    })
  })
  const vectors = codes.length === 0 ? [] : embedder(codes)
  if (vectors.length !== codes.length) {
    throw new AlgorithmInputError({ fn, where: "embedder", problem: `returned ${vectors.length} vectors for ${codes.length} code strings` })
  }
  vectors.forEach((vector, k) => {
    if (vector.length !== vectors[0]!.length) {
      throw new AlgorithmInputError({ fn, where: `embedder, vector ${k}`, problem: `has ${vector.length} dimensions, vector 0 has ${vectors[0]!.length}` })
    }
    if (!vector.every(Number.isFinite)) throw new AlgorithmInputError({ fn, where: `embedder, vector ${k}`, problem: "holds a non-finite number" })
  })

  return perTrajectory(
    "reward",
    batch.groups.map((group, g) => {
      const slot = slots[g]
      if (slot === null || slot === undefined) return group.trajectories.map(() => 0)
      const successes = group.trajectories.flatMap((t, i) => (t.outcome.correct ? [slot[i]!] : []))
      return group.trajectories.map((t, i) => {
        if (t.outcome.correct) return 0
        const own = slot[i]!
        if (own < 0) return 0
        const similarities = successes.map((p) => (p < 0 ? 0 : Math.max(0, cosine(vectors[own]!, vectors[p]!))))
        return o.alpha * Math.min(o.maxSimilarity, mean(similarities))
      })
    }),
  )
}

/**
 * Turn-level code-similarity shaping: each failed trajectory's credit is added to its
 * last turn's reward.
 *
 * @example
 * const shaped = codeSimilarityTurnShaping(batch, turnLevelRewards(batch))
 */
export const codeSimilarityTurnShaping = (
  batch: Batch,
  rewards: PerTurn<"reward">,
  options: CodeSimilarityOptions = codeSimilarityDefaults,
  embed?: Embedder,
): PerTurn<"reward"> => {
  assertNonEmptyBatch("codeSimilarityTurnShaping", batch)
  assertTurnShape("codeSimilarityTurnShaping", batch, rewards)
  const credits = codeSimilarityCredits(batch, options, embed).values
  return perTurn(
    "reward",
    rewards.values.map((rows, g) =>
      rows.map((row, i) => {
        const credit = credits[g]![i]!
        return row.map((r, j) => (j === row.length - 1 ? r + credit : r))
      })
    ),
  )
}

/**
 * Trajectory-level code-similarity shaping: each failed trajectory's credit is added
 * to its reward.
 *
 * @example
 * const shaped = codeSimilarityTrajectoryShaping(batch, trajectoryOutcomeRewards(batch))
 */
export const codeSimilarityTrajectoryShaping = (
  batch: Batch,
  rewards: PerTrajectory<"reward">,
  options: CodeSimilarityOptions = codeSimilarityDefaults,
  embed?: Embedder,
): PerTrajectory<"reward"> => {
  assertNonEmptyBatch("codeSimilarityTrajectoryShaping", batch)
  assertTrajectoryShape("codeSimilarityTrajectoryShaping", batch, rewards)
  const credits = codeSimilarityCredits(batch, options, embed).values
  return perTrajectory("reward", rewards.values.map((row, g) => row.map((r, i) => r + credits[g]![i]!)))
}

/** Catalogue entry `code-similarity` (GTPO, per-turn rewards). */
export const codeSimilarityShaper: Shaper<"turn", CodeSimilarityOptions> = {
  name: "code-similarity",
  summary: "GTPO: partial credit on a failed trajectory's last turn from its code's similarity to the group's successes",
  level: "turn",
  options: CodeSimilarityOptions,
  defaults: codeSimilarityDefaults,
  run: ({ batch, rewards, embed }, options) => codeSimilarityTurnShaping(batch, rewards, options, embed),
  usesPolicyEmbedding: (options) => options.embedding === "policy",
}

/** Catalogue entry `code-similarity-trajectory` (per-trajectory rewards). */
export const codeSimilarityTrajectoryShaper: Shaper<"trajectory", CodeSimilarityOptions> = {
  name: "code-similarity-trajectory",
  summary: "partial credit on a failed trajectory's reward from its code's similarity to the group's successes",
  level: "trajectory",
  options: CodeSimilarityOptions,
  defaults: codeSimilarityDefaults,
  run: ({ batch, rewards, embed }, options) => codeSimilarityTrajectoryShaping(batch, rewards, options, embed),
  usesPolicyEmbedding: (options) => options.embedding === "policy",
}

/** Catalogue entry `none` for per-turn rewards: returns them unchanged (after checking them). */
export const noTurnShaper: Shaper<"turn", NoOptions> = {
  name: "none",
  summary: "no shaping",
  level: "turn",
  options: NoOptions,
  defaults: {},
  run: ({ batch, rewards }) => {
    assertNonEmptyBatch("noTurnShaper", batch)
    assertTurnShape("noTurnShaper", batch, rewards)
    return rewards
  },
}

/** Catalogue entry `none-trajectory`: per-trajectory rewards unchanged (after checking them). */
export const noTrajectoryShaper: Shaper<"trajectory", NoOptions> = {
  name: "none-trajectory",
  summary: "no shaping",
  level: "trajectory",
  options: NoOptions,
  defaults: {},
  run: ({ batch, rewards }) => {
    assertNonEmptyBatch("noTrajectoryShaper", batch)
    assertTrajectoryShape("noTrajectoryShaper", batch, rewards)
    return rewards
  },
}

/**
 * The built-in shapers by name. Names are unique across levels, so the
 * per-trajectory identity is "none-trajectory" (beside "code-similarity-trajectory").
 *
 * @example
 * const shaper = shapers["code-similarity"]
 * shaper.run({ batch, rewards }, shaper.defaults)
 */
export const shapers = {
  "code-similarity": codeSimilarityShaper,
  "code-similarity-trajectory": codeSimilarityTrajectoryShaper,
  none: noTurnShaper,
  "none-trajectory": noTrajectoryShaper,
} as const

/** The name of a built-in shaper. */
export type ShaperName = keyof typeof shapers
