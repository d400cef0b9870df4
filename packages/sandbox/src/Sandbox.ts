/**
 * The `Sandbox` service backed by the worker pool (QuickJS for JavaScript, Pyodide
 * for Python).
 *
 * The layer acquires one {@link createSandboxPool} pool and terminates its workers
 * when the layer's scope closes. The same implementation also provides the DSL's
 * `Sandbox` tag (the one the rollout asks for), so one pool serves both. Guest
 * misbehaviour is an `Observation` with `ok: false`; `SandboxError` means the sandbox
 * itself could not serve.
 *
 * @category services
 */
import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { Sandbox as DslSandbox } from "@turnwise/dsl"
import type { SandboxShape } from "@turnwise/dsl"
import { SandboxError } from "./observation.js"
import type { Language, SandboxRequest } from "./observation.js"
import { createSandboxPool } from "./pool.js"
import type { SandboxPool, SandboxPoolOptions } from "./pool.js"

const toSandboxError = (cause: unknown): SandboxError =>
  cause instanceof SandboxError ? cause : new SandboxError({ reason: cause instanceof Error ? cause.message : String(cause) })

/** Build the service implementation over a pool. */
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

/**
 * Sandboxed interpreters as an Effect service.
 *
 * @example
 * const program = Effect.gen(function* () {
 *   const sandbox = yield* Sandbox
 *   return yield* sandbox.run({ language: "js", code: "4821*97" }) // { ok: true, value: "467637", ... }
 * })
 * Effect.runPromise(program.pipe(Effect.provide(Sandbox.layer({ size: 2 }))))
 */
export class Sandbox extends Context.Service<Sandbox, SandboxShape>()("turnwise/runtime/Sandbox") {
  /** A pool-backed sandbox providing this tag and the DSL's `Sandbox` tag; workers end with the scope. */
  static layer(options: SandboxPoolOptions = {}): Layer.Layer<Sandbox | DslSandbox> {
    return Layer.effectContext(
      Effect.gen(function*() {
        const impl = fromPool(yield* acquirePool(options))
        return Context.make(Sandbox, impl).pipe(Context.add(DslSandbox, impl))
      }),
    )
  }

  /**
   * A session that lives as long as the enclosing scope (e.g. one trajectory).
   *
   * @example
   * Effect.scoped(Effect.gen(function* () {
   *   const id = yield* Sandbox.session("python")
   *   const sandbox = yield* Sandbox
   *   yield* sandbox.run({ language: "python", code: "x = 41", session: id })
   *   return yield* sandbox.run({ language: "python", code: "x + 1", session: id }) // value "42"
   * }))
   */
  static session(language: Language): Effect.Effect<string, SandboxError, Sandbox | Scope.Scope> {
    return Effect.gen(function*() {
      const sandbox = yield* Sandbox
      return yield* Effect.acquireRelease(sandbox.openSession(language), (id) => sandbox.closeSession(id))
    })
  }
}
