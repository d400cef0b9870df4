/**
 * The records behind Effect cluster's `RunnerStorage` (who is registered, who is
 * healthy, which runner holds each shard's lock) and the rules that change them,
 * independent of where the records are kept: a file every process of one machine
 * shares ({@link fileRunnerStorage}) or the learner's memory, served to runners on
 * other machines by the coordinator.
 *
 * A shard lock not refreshed within `lockExpirationMs` is free again: that is how
 * the shards of a runner that died move to the others.
 *
 * @category models
 */
import type { Effect } from "effect"
import type { PersistenceError } from "effect/cluster/ClusterError"
import type * as RunnerStorage from "effect/cluster/RunnerStorage"

/** Membership and shard locks, as plain JSON. */
export interface RunnerRecords {
  nextMachineId: number
  runners: Record<string, { readonly runner: string; healthy: boolean }>
  locks: Record<string, { readonly owner: string; at: number }>
}

/** No runner, no lock. */
export const emptyRunnerRecords = (): RunnerRecords => ({ nextMachineId: 0, runners: {}, locks: {} })

/** Runs `change` on the records (whatever lock their keeping needs held) and keeps what it leaves; `what` names the operation in errors. */
export type RecordsTransaction = <A>(what: string, change: (records: RunnerRecords) => A) => Effect.Effect<A, PersistenceError>

/** Remove a runner and free its shard locks. */
export const forgetRunnerIn = (records: RunnerRecords, address: string): void => {
  delete records.runners[address]
  for (const [shard, lock] of Object.entries(records.locks)) if (lock.owner === address) delete records.locks[shard]
}

/**
 * The engine's storage operations (addresses and shard ids as strings) over records kept by `transact`.
 *
 * @example
 * RunnerStorage.makeEncoded(runnerStorageOps(transact, 3000))
 */
export const runnerStorageOps = (transact: RecordsTransaction, lockExpirationMs: number): RunnerStorage.Encoded => ({
  getRunners: transact("getRunners", (records) => Object.values(records.runners).map((r) => [r.runner, r.healthy] as const)),
  register: (address, runner, healthy) =>
    transact("register", (records) => {
      records.runners[address] = { runner, healthy }
      return records.nextMachineId++
    }),
  unregister: (address) => transact("unregister", (records) => forgetRunnerIn(records, address)),
  setRunnerHealth: (address, healthy) =>
    transact("setRunnerHealth", (records) => {
      const entry = records.runners[address]
      if (entry !== undefined) entry.healthy = healthy
    }),
  acquire: (address, shardIds) =>
    transact("acquire", (records) => {
      const now = Date.now()
      return shardIds.filter((shard) => {
        const lock = records.locks[shard]
        if (lock !== undefined && lock.owner !== address && now - lock.at <= lockExpirationMs) return false
        records.locks[shard] = { owner: address, at: now }
        return true
      })
    }),
  refresh: (address, shardIds) =>
    transact("refresh", (records) => {
      const now = Date.now()
      return shardIds.filter((shard) => {
        const lock = records.locks[shard]
        if (lock === undefined || lock.owner !== address) return false
        lock.at = now
        return true
      })
    }),
  release: (address, shardId) =>
    transact("release", (records) => {
      if (records.locks[shardId]?.owner === address) delete records.locks[shardId]
    }),
  releaseAll: (address) =>
    transact("releaseAll", (records) => {
      for (const [shard, lock] of Object.entries(records.locks)) if (lock.owner === address) delete records.locks[shard]
    }),
})
