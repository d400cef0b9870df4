/**
 * A runner process: joins the cluster of a run over a socket and serves
 * {@link RolloutWorker} entities until it is stopped. Started by
 * {@link startLocalRunners} with its settings as JSON in TURNWISE_RUNNER_SPEC, or
 * (tests) with a {@link JoinRunnerSpec}: the address of a coordinator to join, as
 * `turnwise runner --join` does, plus the same fault injection.
 *
 * `dieAtStep` is fault injection for tests: the first runner (of all those given the
 * same `dieMarker`) to accept a prompt of that step or a later one kills itself with
 * SIGKILL, so exactly one runner dies in the middle of a step, without any timing.
 */
import * as fs from "node:fs"
import { Effect, Layer, Option, Schema } from "effect"
import * as RunnerAddress from "effect/cluster/RunnerAddress"
import { NodeClusterSocket } from "@effect/platform-node"
import { setBackend } from "@turnwise/runtime"
import { rolloutWorkerLayer } from "./rolloutHandler.js"
import { shardingSettings, storageLayer } from "./ClusterSettings.js"
import { WorkerPolicy } from "./WorkerPolicy.js"
import { parseHostPort } from "./Coordinator.js"
import { joinCluster } from "./JoinedRunner.js"
import { fileVersions } from "./PolicyVersions.js"

/** What a runner process is told at start. */
export const RunnerSpec = Schema.Struct({
  port: Schema.Number,
  storageDir: Schema.String,
  weightsDir: Schema.String,
  model: Schema.Unknown,
  optimizer: Schema.Unknown,
  sandboxWorkers: Schema.Number,
  dieAtStep: Schema.optional(Schema.Number),
  dieMarker: Schema.optional(Schema.String),
})
export type RunnerSpec = typeof RunnerSpec.Type

/** A runner that joins a coordinator (see JoinedRunner.ts). */
export const JoinRunnerSpec = Schema.Struct({
  join: Schema.String,
  port: Schema.Number,
  dieAtStep: Schema.optional(Schema.Number),
  dieMarker: Schema.optional(Schema.String),
})
export type JoinRunnerSpec = typeof JoinRunnerSpec.Type

/** True for the one process that creates the marker directory (mkdir is atomic). */
const claim = (marker: string, what: { readonly step: number; readonly index: number; readonly port: number }): boolean => {
  try {
    fs.mkdirSync(marker)
    fs.writeFileSync(`${marker}/claimed.json`, JSON.stringify(what))
    return true
  } catch {
    return false
  }
}

/** The fault injection of a spec: die on accepting a prompt of `dieAtStep` or later, if first to claim the marker. */
const faultHook = (spec: { readonly port: number; readonly dieAtStep?: number | undefined; readonly dieMarker?: string | undefined }) =>
  spec.dieAtStep === undefined
    ? {}
    : {
      onAccept: (what: { readonly step: number; readonly index: number }) =>
        what.step >= spec.dieAtStep! && claim(spec.dieMarker!, { ...what, port: spec.port }) ? process.kill(process.pid, "SIGKILL") : undefined,
    }

const serveLocal = (spec: RunnerSpec) =>
  Effect.gen(function*() {
    const address = RunnerAddress.make("127.0.0.1", spec.port)
    const sharding = NodeClusterSocket.layer({
      storage: "byo",
      shardingConfig: { ...shardingSettings, runnerAddress: Option.some(address) },
    }).pipe(Layer.provide(storageLayer(spec)))
    const workers = rolloutWorkerLayer({ runner: `127.0.0.1:${spec.port}`, ...faultHook(spec) }).pipe(
      Layer.provide(
        WorkerPolicy.layer({
          model: spec.model,
          optimizer: spec.optimizer as never,
          versions: fileVersions(spec.weightsDir),
          sandboxWorkers: spec.sandboxWorkers,
        }),
      ),
      Layer.provide(sharding),
    )
    return yield* Layer.launch(workers)
  })

const serveJoined = (spec: JoinRunnerSpec) =>
  joinCluster({
    coordinator: parseHostPort(spec.join, "join"),
    advertise: { host: "127.0.0.1", port: spec.port },
    ...faultHook(spec),
  }).pipe(Effect.flatMap((ended) => Effect.sync(() => console.error(`runner 127.0.0.1:${spec.port}: ${ended}`))))

const main = Effect.gen(function*() {
  const spec = yield* Schema.decodeUnknownEffect(Schema.Union([JoinRunnerSpec, RunnerSpec]))(JSON.parse(process.env["TURNWISE_RUNNER_SPEC"] ?? "null"))
  yield* Effect.promise(() => setBackend("wasm"))
  return yield* "join" in spec ? serveJoined(spec) : serveLocal(spec)
})

Effect.runFork(main.pipe(Effect.tapCause((cause) => Effect.sync(() => console.error(`runner failed: ${String(cause)}`)))))
