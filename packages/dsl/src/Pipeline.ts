/**
 * The training pipeline: one step, evaluation, and the loop, as Effects.
 *
 * A step rolls out a batch, drops the groups the sample filter rejects (it looks at
 * outcomes, before any reward is computed, so batch-wide normalisation only sees
 * trained groups), assigns rewards, shapes them, turns them into returns and
 * advantages, broadcasts advantages to the policy's tokens and updates the policy
 * with the recipe's loss. The loop adds a deterministic data order (a pure function
 * of seed and step, so a resumed run sees the same prompts), periodic evaluation,
 * checkpoints and metrics. Everything the pipeline needs comes from services, so a
 * host app runs it with its own Layers.
 *
 * @category combinators
 */
import { Effect } from "effect"
import { applyKeep, broadcastToTurns, passAtK, toTrainingSequences, trajectoryCode } from "@turnwise/core"
import type { Batch, Embedder, Values } from "@turnwise/core"
import { advantageMetrics, batchMetrics, meanMetrics } from "./Metrics.js"
import type { Recipe } from "./Recipe.js"
import { rollout } from "./Rollout.js"
import { multiTurnRollout, policyUpdate } from "./ServiceStages.js"
import { runStage, StageError } from "./Stage.js"
import type { Task, TaskProblem } from "./Task.js"
import { CheckpointStore } from "./services/CheckpointStore.js"
import type { CheckpointError } from "./services/CheckpointStore.js"
import { MetricsSink } from "./services/MetricsSink.js"
import { Policy } from "./services/Policy.js"
import type { PolicyError, TrainReport } from "./services/Policy.js"
import type { Sandbox, SandboxError } from "./services/Sandbox.js"
import type { Tokenizer } from "./services/Tokenizer.js"

/** Services a training run needs. */
export type RunServices = Policy | Sandbox | Tokenizer | MetricsSink | CheckpointStore

/** Failures that stop a run (guest code misbehaving never does). */
export type RunError = StageError | PolicyError | SandboxError | CheckpointError

/** What one step produced. */
export interface StepResult {
  readonly batch: Batch
  readonly report: TrainReport
  readonly metrics: Readonly<Record<string, number>>
}

const sumPerTrajectory = (values: Values<"reward">): Array<number> =>
  values.level === "trajectory"
    ? values.values.flat()
    : values.values.flatMap((group) => group.map((turns) => turns.reduce((a, b) => a + b, 0)))

const mean = (xs: ReadonlyArray<number>): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length)

/** When the shaper asks for the policy's own embedding, compute it for every code string of the batch. */
const policyEmbedder = (recipe: Recipe, batch: Batch): Effect.Effect<Embedder | undefined, PolicyError, Policy> =>
  Effect.gen(function*() {
    if (recipe.shaper.entry.usesPolicyEmbedding?.(recipe.shaper.options) !== true) return undefined
    const policy = yield* Policy
    const codes = [...new Set(batch.groups.flatMap((group) => group.trajectories.map(trajectoryCode)))]
    const vectors = yield* policy.embedCode(codes)
    const table = new Map(codes.map((code, k) => [code, vectors[k]!]))
    return (queries: ReadonlyArray<string>) => queries.map((code) => table.get(code) ?? [])
  })

/**
 * One training step on the given problems.
 *
 * @example
 * const result = yield* trainStep(gtpo, arithmetic, problems, { step: 0, seed: 1 })
 */
export const trainStep = <P extends TaskProblem>(
  recipe: Recipe,
  task: Task<P>,
  problems: ReadonlyArray<P>,
  options: { readonly step: number; readonly seed: number },
): Effect.Effect<StepResult, RunError, Policy | Sandbox | Tokenizer> =>
  Effect.gen(function*() {
    if (recipe.rollout.temperature === 0) {
      return yield* new StageError({ stage: "rollout", reason: "temperature 0 (greedy) is for evaluation; training needs temperature > 0" })
    }
    const started = performance.now()
    const rolled = yield* Effect.scoped(multiTurnRollout.run(recipe.rollout, { task, problems, seed: options.seed, step: options.step }))
    const rolledAt = performance.now()
    const result = yield* trainOnBatch(recipe, rolled)
    const finished = performance.now()
    const timed: Record<string, number> = { ...result.metrics, "time/rollout_s": (rolledAt - started) / 1000 }
    if (result.report.reason === everyGroupDropped) return { ...result, metrics: timed }
    timed["time/train_s"] = (finished - rolledAt) / 1000
    timed["time/step_s"] = (finished - started) / 1000
    timed["tokens_per_s"] = result.metrics["tokens/policy"]! / Math.max(1e-9, (finished - started) / 1000)
    return { ...result, metrics: timed }
  })

const everyGroupDropped = "the sample filter dropped every group"

/**
 * The stages after the rollout, on a batch of trajectories however they were
 * produced (the built-in rollout, or episodes recorded by a served endpoint): sample
 * filter, rewards, shaping, returns, advantages and the policy update. The metrics
 * are those of {@link trainStep} without its timings.
 *
 * @example
 * const result = yield* trainOnBatch(gtpo, recordedBatch)
 */
export const trainOnBatch = (recipe: Recipe, rolled: Batch): Effect.Effect<StepResult, RunError, Policy> =>
  Effect.gen(function*() {
    const filtered = yield* runStage(recipe.filter, { batch: rolled })
    const batch = applyKeep(rolled, filtered.keep)
    const metrics: Record<string, number> = {
      ...batchMetrics(rolled),
      "filter/dropped_groups": rolled.groups.length - batch.groups.length,
    }
    if (batch.groups.length === 0) {
      const report: TrainReport = { skipped: true, reason: everyGroupDropped, metrics: {} }
      return { batch: rolled, report, metrics: { ...metrics, "train/skipped": 1 } }
    }
    const rewards = yield* runStage(recipe.reward, { batch })
    const embed = yield* policyEmbedder(recipe, batch)
    const shaped = yield* runStage(recipe.shaper, embed === undefined ? { batch, rewards } : { batch, rewards, embed })
    const returns = yield* runStage(recipe.returns, { batch, rewards: shaped })
    const advantages = yield* runStage(recipe.advantage, { batch, returns })
    const sequences = yield* Effect.try({
      try: () => toTrainingSequences(batch, broadcastToTurns(batch, advantages)),
      catch: (error) => new StageError({ stage: "sequences", reason: error instanceof Error ? error.message : String(error) }),
    })
    const report = yield* policyUpdate.run(recipe.optimizer, {
      sequences,
      loss: (inputs) => recipe.loss.entry.run(inputs, recipe.loss.options),
      temperature: recipe.rollout.temperature,
      accumulation: recipe.loss.entry.averagesOver(recipe.loss.options),
    })
    return {
      batch: rolled,
      report,
      metrics: {
        ...metrics,
        ...advantageMetrics(batch, advantages),
        ...report.metrics,
        "reward/mean": mean(sumPerTrajectory(rewards)),
        "reward/shaped_mean": mean(sumPerTrajectory(shaped)),
        "train/skipped": report.skipped ? 1 : 0,
      },
    }
  })

/** Pass@k of sampled evaluation: per problem, how many of the k samples were correct. */
export interface SampledEvaluation {
  /** Samples per problem. */
  readonly k: number
  /** Correct samples per problem, in the problems' order (each in [0, k]). */
  readonly correct: ReadonlyArray<number>
}

/** What {@link evaluate} returns. */
export interface Evaluation {
  readonly metrics: Readonly<Record<string, number>>
  /** The greedy (or `temperature`) pass: one trajectory per problem. */
  readonly batch: Batch
  /** With `samples` > 0: the sampled pass's correct counts per problem. */
  readonly sampled?: SampledEvaluation
}

/** The metric name of pass@k for k samples, e.g. `eval/pass@8`. */
export const passAtKMetric = (k: number): string => `eval/pass@${k}`

/**
 * Metrics of a sampled pass: `eval/pass@k` (mean over problems of the unbiased
 * estimator; with n = k samples it is the fraction of problems with any correct
 * sample), `eval/pass@1` (mean correctness of the samples) and `eval/samples` (k).
 */
export const sampledMetrics = (sampled: SampledEvaluation): Record<string, number> => {
  const { k, correct } = sampled
  return {
    [passAtKMetric(k)]: mean(correct.map((c) => passAtK(k, c, k))),
    "eval/pass@1": mean(correct.map((c) => passAtK(k, c, 1))),
    "eval/samples": k,
  }
}

/** Seed offset of the sampled pass, so it draws other randomness than the greedy pass and is the same every time. */
const sampledSeedOffset = 7_919

/**
 * Evaluate on problems: one trajectory per problem, greedy unless a temperature is
 * given. With `samples` = k > 0, also k completions per problem at the recipe's
 * rollout temperature (seeded from `seed`, so it is reproducible), reported as
 * `eval/pass@k` and `eval/pass@1` beside the greedy metrics ({@link sampledMetrics}).
 *
 * @example
 * const { metrics } = yield* evaluate(recipe, arithmetic, heldOut, { seed: 0, samples: 8 })
 * metrics["outcome/accuracy"] // greedy
 * metrics["eval/pass@8"] // any of 8 samples correct
 */
export const evaluate = <P extends TaskProblem>(
  recipe: Recipe,
  task: Task<P>,
  problems: ReadonlyArray<P>,
  options: { readonly seed: number; readonly temperature?: number; readonly batchSize?: number; readonly samples?: number },
): Effect.Effect<Evaluation, PolicyError | SandboxError | StageError, Policy | Sandbox | Tokenizer> =>
  Effect.gen(function*() {
    const config = { ...recipe.rollout, groupSize: 1, temperature: options.temperature ?? 0 }
    const size = options.batchSize ?? 64
    const groups: Array<Batch["groups"][number]> = []
    for (let start = 0; start < problems.length; start += size) {
      const part = yield* Effect.scoped(rollout(task, problems.slice(start, start + size), config, { seed: options.seed + start, step: -1 }))
      groups.push(...part.groups)
    }
    const batch: Batch = { groups }
    const k = options.samples ?? 0
    if (k === 0) return { batch, metrics: batchMetrics(batch) }
    if (!(Number.isInteger(k) && k > 0)) {
      return yield* new StageError({ stage: "evaluate", reason: `samples per problem must be a non-negative integer, got ${k}` })
    }
    if (recipe.rollout.temperature === 0) {
      return yield* new StageError({
        stage: "evaluate",
        reason: `pass@${k} samples at the recipe's rollout temperature, which is 0 (greedy): every sample would be the same`,
      })
    }
    const sampling = { ...recipe.rollout, groupSize: k }
    const perPart = Math.max(1, Math.floor(size / k))
    const correct: Array<number> = []
    for (let start = 0; start < problems.length; start += perPart) {
      const part = yield* Effect.scoped(
        rollout(task, problems.slice(start, start + perPart), sampling, { seed: options.seed + sampledSeedOffset + start, step: -1 }),
      )
      for (const group of part.groups) correct.push(group.trajectories.filter((t) => t.outcome.correct).length)
    }
    const sampled = { k, correct }
    return { batch, sampled, metrics: { ...batchMetrics(batch), ...sampledMetrics(sampled) } }
  })

/** The data order: a seeded permutation of the training problems, walked step by step. */
export const problemsForStep = <P>(problems: ReadonlyArray<P>, perStep: number, step: number, seed: number): ReadonlyArray<P> => {
  const n = problems.length
  const order = permutation(n, seed)
  return Array.from({ length: perStep }, (_, k) => problems[order[(step * perStep + k) % n]!]!)
}

const permutation = (n: number, seed: number): Array<number> => {
  const order = Array.from({ length: n }, (_, i) => i)
  let state = (seed ^ 0x9e3779b9) >>> 0
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 4294967296
  }
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  return order
}

/** Settings of a training loop. */
export interface LoopOptions<P> {
  readonly trainProblems: ReadonlyArray<P>
  readonly evalProblems: ReadonlyArray<P>
  readonly steps: number
  readonly promptsPerStep: number
  readonly seed: number
  /** Evaluate every this many steps (0 = only at the end). */
  readonly evalEvery: number
  /** Save a checkpoint every this many steps (0 = only at the end). */
  readonly checkpointEvery: number
  /** Continue from the newest checkpoint when there is one. */
  readonly resume: boolean
  /** Samples per held-out problem for pass@k at each evaluation (0 = greedy only). */
  readonly evalSamples?: number
  /** Called after each step (progress display). */
  readonly onStep?: (step: number, metrics: Readonly<Record<string, number>>) => void
}

/** What a loop ends with. */
export interface LoopResult {
  readonly startStep: number
  readonly finalStep: number
  readonly finalEval: Readonly<Record<string, number>>
  readonly trainMetrics: ReadonlyArray<Readonly<Record<string, number>>>
}

/** How a loop runs one step on its problems: {@link trainStep} in this process, or a step whose rollouts run elsewhere. */
export type StepRunner<P, E, R> = (
  problems: ReadonlyArray<P>,
  at: { readonly step: number; readonly seed: number },
) => Effect.Effect<{ readonly metrics: Readonly<Record<string, number>> }, E, R>

/**
 * Train for `steps` steps with evaluation, metrics and checkpoints.
 *
 * @example
 * const result = yield* trainLoop(gtpo, arithmetic, { trainProblems, evalProblems, steps: 40, promptsPerStep: 8, seed: 1, evalEvery: 10, checkpointEvery: 10, resume: false })
 */
export const trainLoop = <P extends TaskProblem>(recipe: Recipe, task: Task<P>, options: LoopOptions<P>): Effect.Effect<LoopResult, RunError, RunServices> =>
  trainLoopWith(recipe, task, options, (problems, at) => trainStep(recipe, task, problems, at))

/**
 * {@link trainLoop} with another way of running each step: the same data order, metrics,
 * evaluation (in this process), checkpoints and resume.
 *
 * @example
 * yield* trainLoopWith(gtpo, arithmetic, options, (problems, at) => myDistributedStep(problems, at))
 */
export const trainLoopWith = <P extends TaskProblem, E, R>(
  recipe: Recipe,
  task: Task<P>,
  options: LoopOptions<P>,
  runStep: StepRunner<P, E, R>,
): Effect.Effect<LoopResult, RunError | E, RunServices | R> =>
  Effect.gen(function*() {
    const sink = yield* MetricsSink
    const store = yield* CheckpointStore
    let startStep = 0
    if (options.resume) {
      const restored = yield* store.restoreLatest()
      if (restored !== null) startStep = restored.step
    }
    const trainMetrics: Array<Readonly<Record<string, number>>> = []
    let finalEval: Readonly<Record<string, number>> = {}
    for (let step = startStep; step < options.steps; step++) {
      const problems = problemsForStep(options.trainProblems, options.promptsPerStep, step, options.seed)
      const result = yield* runStep(problems, { step, seed: options.seed * 1_000_003 + step })
      trainMetrics.push(result.metrics)
      yield* sink.record({ step: step + 1, phase: "train", metrics: result.metrics })
      options.onStep?.(step + 1, result.metrics)
      const done = step + 1
      const last = done === options.steps
      if ((options.evalEvery > 0 && done % options.evalEvery === 0) || last) {
        const evaluation = yield* evaluate(recipe, task, options.evalProblems, { seed: options.seed, samples: options.evalSamples ?? 0 })
        finalEval = evaluation.metrics
        yield* sink.record({ step: done, phase: "eval", metrics: evaluation.metrics })
      }
      if ((options.checkpointEvery > 0 && done % options.checkpointEvery === 0) || last) {
        yield* store.save(done, { recipe: recipe.name })
      }
    }
    return { startStep, finalStep: options.steps, finalEval, trainMetrics }
  })

export { meanMetrics }
