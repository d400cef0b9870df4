/**
 * The DSL's `Sandbox` service backed by the worker pool (QuickJS for JavaScript,
 * Pyodide for Python).
 *
 * The layer acquires one {@link createSandboxPool} pool and terminates its workers
 * when the layer's scope closes. Guest misbehaviour is an `Observation` with
 * `ok: false`; `SandboxError` means the sandbox itself could not serve. Each method is a
 * traced span (`Sandbox.run`, ...).
 *
 * @example
 * const program = Effect.gen(function* () {
 *   const sandbox = yield* Sandbox
 *   return yield* sandbox.run({ language: "js", code: "4821*97" }) // { ok: true, value: "467637", ... }
 * })
 * Effect.runPromise(program.pipe(Effect.provide(WorkerSandbox.layer({ size: 2 }))))
 *
 * @category layers
 */
import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import { Sandbox } from "@turnwise/dsl"
import type { SandboxShape } from "@turnwise/dsl"
import { SandboxError } from "./observation.js"
import type { Language, SandboxRequest } from "./observation.js"
import { createSandboxPool } from "./pool.js"
import type { SandboxPool, SandboxPoolOptions } from "./pool.js"

const toSandboxError = (cause: unknown): SandboxError =>
  cause instanceof SandboxError ? cause : new SandboxError({ reason: cause instanceof Error ? cause.message : String(cause) })

/** The service implementation over a pool. */
const fromPool = (pool: SandboxPool): SandboxShape => ({
  run: Effect.fn("Sandbox.run")(function*(request: SandboxRequest) {
    return yield* Effect.tryPromise({ try: () => pool.run(request), catch: toSandboxError })
  }),
  openSession: Effect.fn("Sandbox.openSession")(function*(language: Language) {
    return yield* Effect.try({ try: () => pool.openSession(language), catch: toSandboxError })
  }),
  closeSession: Effect.fn("Sandbox.closeSession")(function*(id: string) {
    yield* Effect.sync(() => pool.closeSession(id))
  }),
})

const acquirePool = (options: SandboxPoolOptions): Effect.Effect<SandboxPool, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => createSandboxPool(options)),
    (pool) => Effect.promise(() => pool.close()),
  )

/** The `Sandbox` service over one pool; its workers end with the layer's scope. */
export const layer = (options: SandboxPoolOptions = {}): Layer.Layer<Sandbox> => Layer.effect(Sandbox, Effect.map(acquirePool(options), fromPool))
