/**
 * The `Sandbox` service: run one piece of model-written code and observe it.
 *
 * Guest misbehaviour (timeouts, memory exhaustion, crashes, exceptions) is an
 * {@link Observation} with `ok: false`, never a failure of the Effect: the training
 * run goes on. {@link SandboxError} is reserved for the sandbox itself breaking (a
 * worker that cannot start). Implementations live in @turnwise/runtime (QuickJS for
 * JavaScript, Pyodide for Python).
 *
 * @category services
 */
import { Context, Data, Effect } from "effect"
import type { Scope } from "effect"

/** One execution request. */
export interface SandboxRequest {
  readonly language: "js" | "python"
  readonly code: string
  /** Run inside this session (later cells see earlier cells' variables); fresh state when absent. */
  readonly session?: string
  readonly timeoutMs?: number
  readonly memoryMb?: number
}

/** What the guest did. */
export type Observation =
  | { readonly ok: true; readonly stdout: string; readonly value?: string; readonly durationMs: number }
  | {
    readonly ok: false
    readonly kind: "timeout" | "memory" | "crash" | "error"
    readonly error: string
    readonly stdout: string
    readonly durationMs: number
  }

/** The sandbox itself failed (not the guest). */
export class SandboxError extends Data.TaggedError("SandboxError")<{ readonly reason: string }> {
  override get message(): string {
    return `sandbox failure: ${this.reason}`
  }
}

/** What a sandbox offers. */
export interface SandboxShape {
  readonly run: (request: SandboxRequest) => Effect.Effect<Observation, SandboxError>
  /** Open a stateful session (per trajectory); returns its id. */
  readonly openSession: (language: "js" | "python") => Effect.Effect<string, SandboxError>
  /** Dispose a session; unknown ids are ignored. */
  readonly closeSession: (id: string) => Effect.Effect<void>
}

/**
 * @example
 * const obs = Effect.gen(function* () { const sb = yield* Sandbox; return yield* sb.run({ language: "js", code: "6*7" }) })
 */
export class Sandbox extends Context.Service<Sandbox, SandboxShape>()("turnwise/dsl/Sandbox") {
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
  static session(language: "js" | "python"): Effect.Effect<string, SandboxError, Sandbox | Scope.Scope> {
    return Effect.gen(function*() {
      const sandbox = yield* Sandbox
      return yield* Effect.acquireRelease(sandbox.openSession(language), (id) => sandbox.closeSession(id))
    })
  }
}
