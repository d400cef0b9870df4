/**
 * A runner that joins a learner's cluster through its coordinator: the way to roll
 * out on other machines (`turnwise runner --join HOST:PORT`).
 *
 * It is told only where the coordinator listens and how others reach it. From the
 * coordinator it takes the model configuration and the optimizer section (so the
 * published weights fit its copy), the engine's runner storage, and each policy
 * version's bytes when a prompt asks for one; it shares no files with the learner.
 * It then serves {@link RolloutWorker} entities on its own socket, exactly as a
 * local runner does, until it is interrupted or the coordinator stops answering
 * (the learner finished or died), when it leaves the cluster and ends.
 *
 * @category constructors
 */
import { Data, Effect, Layer, Option, Schedule, Schema } from "effect"
import * as RunnerAddress from "effect/cluster/RunnerAddress"
import * as MessageStorage from "effect/cluster/MessageStorage"
import { NodeClusterSocket } from "@effect/platform-node"
import { shardingSettings } from "./ClusterSettings.js"
import { coordinatorClient, formatHostPort, JoinSettings, remoteRunnerStorage } from "./Coordinator.js"
import type { HostPort } from "./Coordinator.js"
import { rolloutWorkerLayer } from "./rolloutHandler.js"
import type { AcceptHook } from "./rolloutHandler.js"
import { WorkerPolicy } from "./WorkerPolicy.js"

/** The runner could not join, or its coordinator went away. */
export class JoinError extends Data.TaggedError("JoinError")<{ readonly coordinator: string; readonly problem: string }> {
  override get message(): string {
    return `runner joining the coordinator at ${this.coordinator}: ${this.problem}`
  }
}

/** Options of {@link joinCluster}. */
export interface JoinOptions extends AcceptHook {
  /** The learner's coordinator, as this machine reaches it. */
  readonly coordinator: HostPort
  /** This runner's address as the learner and the other runners reach it. */
  readonly advertise: HostPort
  /** Where to bind (default: `advertise`); `0.0.0.0` to listen on every interface. */
  readonly listenHost?: string
  /** Sandbox workers of this runner (default: the learner's `sandboxWorkers`). */
  readonly sandboxWorkers?: number
  /** How long to keep trying to reach the coordinator at start, in seconds (default 120). */
  readonly connectSeconds?: number
  /** Called once the runner serves, with its advertised address. */
  readonly onServing?: (address: string) => void
}

/** How often a runner checks that its coordinator still answers. */
const coordinatorCheckInterval = "500 millis"

/**
 * Join the coordinator and serve rollout workers until interrupted or the coordinator
 * is gone; succeeds with why it ended.
 *
 * @example
 * yield* joinCluster({ coordinator: { host: "10.0.0.5", port: 7400 }, advertise: { host: "10.0.0.6", port: 7401 } })
 */
export const joinCluster = (options: JoinOptions): Effect.Effect<string, JoinError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const where = formatHostPort(options.coordinator)
      const joinError = (problem: string) => new JoinError({ coordinator: where, problem })
      // A runner may start before its learner: it tries again every second, up to connectSeconds.
      const connectSeconds = options.connectSeconds ?? 120
      const { client, settingsText } = yield* Effect.gen(function*() {
        const client = yield* coordinatorClient(options.coordinator)
        return { client, settingsText: yield* client.JoinSettings() }
      }).pipe(
        Effect.retry({ schedule: Schedule.spaced("1 second"), times: connectSeconds }),
        Effect.mapError((error) => joinError(`no answer within ${connectSeconds} s: ${error.message}`)),
      )
      const settings = yield* Schema.decodeUnknownEffect(Schema.fromJsonString(JoinSettings))(settingsText).pipe(
        Effect.mapError((error) => joinError(`the run's settings do not decode: ${error.message}`)),
      )
      const advertised = formatHostPort(options.advertise)
      let coordinatorGone = false
      const sharding = NodeClusterSocket.layer({
        storage: "byo",
        shardingConfig: {
          ...shardingSettings,
          runnerAddress: Option.some(RunnerAddress.make(options.advertise.host, options.advertise.port)),
          runnerListenAddress: Option.some(RunnerAddress.make(options.listenHost ?? options.advertise.host, options.advertise.port)),
        },
      }).pipe(Layer.provide(Layer.merge(MessageStorage.layerNoop, remoteRunnerStorage(client, where, { gone: () => coordinatorGone }))))
      const versions = {
        where: `coordinator ${where}`,
        read: (version: number) => Effect.runPromise(client.PolicyWeights({ version })),
      }
      const workers = rolloutWorkerLayer({ runner: advertised, ...(options.onAccept === undefined ? {} : { onAccept: options.onAccept }) }).pipe(
        Layer.provide(
          WorkerPolicy.layer({
            model: settings.model,
            optimizer: settings.optimizer as never,
            versions,
            sandboxWorkers: options.sandboxWorkers ?? settings.sandboxWorkers,
          }),
        ),
        Layer.provide(sharding),
      )
      yield* Layer.build(workers).pipe(
        Effect.mapError((error) => joinError(`cannot serve at ${advertised}: ${error instanceof Error ? error.message : String(error)}`)),
      )
      options.onServing?.(advertised)
      // A learner that finished (or died) no longer answers: the first check that fails ends the runner.
      const gone = yield* client.GetRunners().pipe(Effect.repeat(Schedule.spaced(coordinatorCheckInterval)), Effect.andThen(Effect.never), Effect.flip)
      coordinatorGone = true
      return `the coordinator at ${where} stopped answering (${gone.message})`
    }),
  )
