/**
 * Running model-written code yourself: the sandbox pool (Promise API) and the Effect
 * service, as in docs/SANDBOX.md.
 *
 *   npx tsx examples/sandbox.ts
 */
import { Effect } from "effect"
import { Sandbox } from "@turnwise/dsl"
import { createSandboxPool, WorkerSandbox } from "@turnwise/sandbox"
import type { Observation } from "@turnwise/sandbox"

/** Run the examples; returns the observations they got. */
export const main = async (): Promise<{ session: Observation; fresh: Observation; service: Observation; hang: Observation }> => {
  // Promise API: a Python session keeps its variables between calls; a fresh call does not see them.
  const pool = createSandboxPool({ size: 1, limits: { timeoutMs: 2_000, memoryMb: 128 } })
  let session: Observation, fresh: Observation, hang: Observation
  try {
    const id = pool.openSession("python")
    await pool.run({ language: "python", code: "x = 40", session: id })
    session = await pool.run({ language: "python", code: "x + 2", session: id })
    fresh = await pool.run({ language: "python", code: "x + 2" })
    pool.closeSession(id)
    // A guest that never stops is an observation, not an exception.
    hang = await pool.run({ language: "python", code: "while True: pass", timeoutMs: 300 })
  } finally {
    await pool.close()
  }

  // Effect service: the DSL's Sandbox over one pool for the layer's scope.
  const program = Effect.gen(function*() {
    const sandbox = yield* Sandbox
    return yield* sandbox.run({ language: "js", code: "[1, 2, 3].map((x) => x * x)" })
  })
  const service = await Effect.runPromise(program.pipe(Effect.provide(WorkerSandbox.layer({ size: 1 }))))
  return { session, fresh, service, hang }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await main()
  for (const [name, observation] of Object.entries(results)) console.log(name, JSON.stringify(observation))
}
