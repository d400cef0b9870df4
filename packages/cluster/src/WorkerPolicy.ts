/**
 * A runner's copy of the policy: a model of the learner's configuration whose
 * weights follow the versions the learner publishes, the tokenizer, and the
 * runner's sandbox pool, exposed as the DSL's `Policy`, `Tokenizer` and `Sandbox`
 * services so the worker runs the very rollout the in-process pipeline runs.
 *
 * One rollout holds the copy at a time: a prompt that asks for a newer version
 * must not swap weights under a session another prompt is still sampling from.
 *
 * @category services
 */
import { Context, Effect, Layer, Semaphore } from "effect"
import type { Scope } from "effect"
import { Policy, Sandbox as DslSandbox, Tokenizer } from "@turnwise/dsl"
import type { OptimizerConfig } from "@turnwise/dsl"
import { createTransformer, makePolicyRuntime, TfjsPolicy, TfjsTokenizer, byteTokenizer } from "@turnwise/runtime"
import { WorkerSandbox } from "@turnwise/sandbox"
import { assignVersion, PolicyVersionError } from "./PolicyVersions.js"
import type { VersionSource } from "./PolicyVersions.js"

/** What a worker's policy copy offers. */
export interface WorkerPolicyShape {
  /** Run `use` with the weights of `version` and the rollout services; one at a time. */
  readonly withVersion: <A, E>(
    version: number,
    use: Effect.Effect<A, E, Policy | Tokenizer | DslSandbox | Scope.Scope>,
  ) => Effect.Effect<A, E | PolicyVersionError>
}

/** Settings of a runner's policy copy. */
export interface WorkerPolicyOptions {
  /** The model configuration (the learner's, so published weights fit). */
  readonly model: unknown
  /** The optimizer section of the recipe (the copy never trains; the runtime wants one). */
  readonly optimizer: OptimizerConfig
  /** Where the versions the learner publishes are read from. */
  readonly versions: VersionSource
  readonly sandboxWorkers: number
}

/**
 * @example
 * Effect.gen(function* () { const copy = yield* WorkerPolicy; return yield* copy.withVersion(3, rolloutEffect) })
 */
export class WorkerPolicy extends Context.Service<WorkerPolicy, WorkerPolicyShape>()("turnwise/cluster/WorkerPolicy") {
  /** A copy built from the model configuration; weights arrive with the first version asked for. */
  static layer(options: WorkerPolicyOptions): Layer.Layer<WorkerPolicy> {
    return Layer.effect(
      WorkerPolicy,
      Effect.gen(function*() {
        const runtime = yield* Effect.acquireRelease(
          Effect.sync(() => makePolicyRuntime(createTransformer(options.model), byteTokenizer, options.optimizer, { seed: 0, totalSteps: 1 })),
          (runtime) => Effect.sync(() => runtime.dispose()),
        )
        const sandbox = yield* Layer.build(WorkerSandbox.layer({ size: options.sandboxWorkers }))
        const services = yield* Layer.build(Layer.mergeAll(TfjsPolicy.layer(runtime), TfjsTokenizer.layer(byteTokenizer), Layer.succeedContext(sandbox)))
        const lock = yield* Semaphore.make(1)
        let held = -1
        const ensure = (version: number) =>
          version === held
            ? Effect.void
            : Effect.tryPromise({
              try: async () => assignVersion(await options.versions.read(version), version, options.versions.where, runtime.model),
              catch: (error) =>
                error instanceof PolicyVersionError
                  ? error
                  : new PolicyVersionError({ version, dir: options.versions.where, problem: error instanceof Error ? error.message : String(error) }),
            }).pipe(Effect.tap(() => Effect.sync(() => (held = version))))
        return WorkerPolicy.of({
          withVersion: (version, use) => Semaphore.withPermit(lock)(Effect.flatMap(ensure(version), () => Effect.scoped(use).pipe(Effect.provide(services)))),
        })
      }),
    )
  }
}
