/**
 * The settings every process of one cluster run shares: where runner membership
 * and policy versions live, and the engine's timings, tuned for local processes
 * (a killed runner's shards move within a few seconds, not the engine's default
 * of about a minute).
 *
 * @category models
 */
import * as path from "node:path"
import { Layer } from "effect"
import * as MessageStorage from "effect/cluster/MessageStorage"
import type * as ShardingConfig from "effect/cluster/ShardingConfig"
import { fileRunnerStorage } from "./FileRunnerStorage.js"

/** Where a run's shared cluster state lives. */
export interface ClusterDirs {
  /** Runner membership and shard locks. */
  readonly storageDir: string
  /** Published policy versions. */
  readonly weightsDir: string
}

/** The cluster directories under a run directory. */
export const clusterDirs = (runDir: string): ClusterDirs => ({
  storageDir: path.join(runDir, "cluster", "runners"),
  weightsDir: path.join(runDir, "cluster", "policy"),
})

/** How long a shard lock outlives its last refresh. */
export const lockExpirationMs = 3_000

/** Engine timings shared by the learner and the runners (they must agree on the shard count). */
export const shardingSettings: Partial<ShardingConfig.ShardingConfig["Service"]> = {
  shardsPerGroup: 16,
  shardLockExpiration: `${lockExpirationMs} millis`,
  shardLockRefreshInterval: "500 millis",
  refreshAssignmentsInterval: "250 millis",
  runnerHealthCheckInterval: "500 millis",
  sendRetryInterval: "100 millis",
  entityTerminationTimeout: "1 second",
}

/** Message storage (none: prompts are volatile; the learner resends what a dead runner lost) and the shared runner storage. */
export const storageLayer = (dirs: ClusterDirs) => Layer.merge(MessageStorage.layerNoop, fileRunnerStorage({ dir: dirs.storageDir, lockExpirationMs }))
