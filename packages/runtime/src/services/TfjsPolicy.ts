/**
 * The DSL's `Policy` service over a tfjs {@link PolicyRuntime}: sampling sessions on
 * the KV-cached sampler, policy-gradient and supervised updates through the runtime's
 * update engine, and the policy's embedding of code. Each method is a traced span
 * (`Policy.train`, `Policy.generate`, ...).
 *
 * @example
 * program.pipe(Effect.provide(TfjsPolicy.layer(runtime)))
 *
 * @category layers
 */
import { Effect, Layer } from "effect"
import { Policy, PolicyError } from "@turnwise/dsl"
import type { Generation, SamplingSession } from "@turnwise/dsl"
import { embedCodes } from "../PolicyRuntime.js"
import type { PolicyRuntime } from "../PolicyRuntime.js"
import { createSamplingSession } from "../sampler.js"
import { crossEntropyObjective } from "../train/supervised.js"
import { policyObjective } from "../train/trainer.js"
import type { StepReport } from "../train/trainer.js"
import { describeRuntimeError } from "./runtime-errors.js"

const trainReport = (report: StepReport) => ({
  skipped: report.skipped,
  ...(report.reason === undefined ? {} : { reason: report.reason }),
  metrics: report.metrics,
})

const failure = (operation: string) => (error: unknown) => new PolicyError({ operation, reason: describeRuntimeError(error) })

/** The `Policy` service over `runtime`. */
export const layer = (runtime: PolicyRuntime): Layer.Layer<Policy> =>
  Layer.succeed(Policy, {
    maxSeqLen: runtime.model.maxSeqLen,
    session: Effect.fn("Policy.session")(function*(rows: number, seed: number) {
      const session = yield* Effect.acquireRelease(
        Effect.try({ try: () => createSamplingSession(runtime.model, { rows, seed, tokenizer: runtime.tokenizer }), catch: failure("session") }),
        (opened) => Effect.sync(() => opened.dispose()),
      )
      const sampling: SamplingSession = {
        append: Effect.fn("Policy.append")(function*(row: number, tokens: ReadonlyArray<number>) {
          yield* Effect.try({ try: () => session.append(row, tokens), catch: failure("append") })
        }),
        generate: Effect.fn("Policy.generate")(function*(rows, options) {
          // Asynchronous reads: the only kind the webgpu backend supports in Node.
          const generated = yield* Effect.tryPromise({
            try: () => session.generateAsync(rows, { ...options, eos: runtime.tokenizer.eos }),
            catch: failure("generate"),
          })
          return generated.map((g): Generation => ({ tokens: g.tokens, logprobs: g.logprobs, text: g.text, finish: g.finish }))
        }),
        length: (row) => session.length(row),
      }
      return sampling
    }),
    train: Effect.fn("Policy.train")(function*(sequences, options) {
      const report = yield* Effect.tryPromise({
        try: () => runtime.engine.run(sequences, policyObjective(options.loss), options.temperature, options.accumulation),
        catch: failure("train"),
      })
      return trainReport(report)
    }),
    trainSupervised: Effect.fn("Policy.trainSupervised")(function*(sequences) {
      const report = yield* Effect.tryPromise({
        try: () => runtime.engine.run(sequences, crossEntropyObjective, 1, "tokens", "supervised"),
        catch: failure("trainSupervised"),
      })
      return trainReport(report)
    }),
    embedCode: Effect.fn("Policy.embedCode")(function*(codes) {
      return yield* Effect.tryPromise({ try: () => embedCodes(runtime, codes), catch: failure("embedCode") })
    }),
  })
