/**
 * The coordinator's process: serves the coordinator protocol (see Coordinator.ts) with
 * the options in TURNWISE_COORDINATOR_SPEC, prints `listening <port>` once it listens,
 * and runs until SIGTERM or until its standard input closes (the learner that started
 * it is gone, even if it was killed).
 */
import { Effect, Schema } from "effect"
import { JoinSettings, serveCoordinator } from "./Coordinator.js"

const CoordinatorSpec = Schema.Struct({
  listen: Schema.Struct({ host: Schema.String, port: Schema.Int }),
  weightsDir: Schema.String,
  settings: JoinSettings,
  lockExpirationMs: Schema.Number,
})

const main = Effect.scoped(
  Effect.gen(function*() {
    const spec = yield* Schema.decodeUnknownEffect(CoordinatorSpec)(JSON.parse(process.env["TURNWISE_COORDINATOR_SPEC"] ?? "null"))
    const port = yield* serveCoordinator(spec)
    process.stdout.write(`listening ${port}\n`)
    yield* Effect.callback<void>((resume) => {
      const stop = () => resume(Effect.void)
      process.stdin.once("end", stop)
      process.stdin.once("close", stop)
      process.once("SIGTERM", stop)
      process.stdin.resume()
    })
  }),
)

Effect.runPromise(main).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`coordinator failed: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  },
)
