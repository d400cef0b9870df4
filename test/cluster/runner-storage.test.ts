import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import * as Runner from "effect/cluster/Runner"
import * as RunnerAddress from "effect/cluster/RunnerAddress"
import { RunnerStorage } from "effect/cluster/RunnerStorage"
import * as ShardId from "effect/cluster/ShardId"
import { fileRunnerStorage, forgetRunner, promptSeed } from "@turnwise/cluster"

const a = RunnerAddress.make("127.0.0.1", 4001)
const b = RunnerAddress.make("127.0.0.1", 4002)
const shards = [ShardId.make("default", 1), ShardId.make("default", 2)]
const names = (ids: ReadonlyArray<ShardId.ShardId>) => ids.map((id) => ShardId.toString(id)).sort()

/** Two handles on one file, as two processes would have. */
const storages = (lockExpirationMs: number) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "turnwise-runner-storage-"))
  const open = () =>
    Effect.runPromise(
      Effect.gen(function*() {
        return yield* RunnerStorage
      }).pipe(Effect.provide(fileRunnerStorage({ dir, lockExpirationMs }))),
    )
  return { dir, open }
}

describe("file runner storage", () => {
  it("shares membership and health between handles on the same file", async () => {
    const { open } = storages(60_000)
    const [first, second] = [await open(), await open()]
    const ids = await Effect.runPromise(
      Effect.all([
        first.register(Runner.make({ address: a, groups: ["default"], weight: 1 }), true),
        second.register(Runner.make({ address: b, groups: ["default"], weight: 1 }), true),
      ]),
    )
    expect(new Set(ids).size).toBe(2)
    await Effect.runPromise(first.setRunnerHealth(b, false))
    const seen = await Effect.runPromise(second.getRunners)
    expect(seen.map(([runner, healthy]) => `${runner.address.port}:${healthy}`).sort()).toEqual(["4001:true", "4002:false"])
  })

  it("a shard lock is held until released, forgotten with its runner, or expired", async () => {
    const { dir, open } = storages(60_000)
    const storage = await open()
    expect(names(await Effect.runPromise(storage.acquire(a, shards)))).toEqual(["default:1", "default:2"])
    expect(await Effect.runPromise(storage.acquire(b, shards))).toEqual([])
    await Effect.runPromise(storage.release(a, shards[0]!))
    expect(names(await Effect.runPromise(storage.acquire(b, shards)))).toEqual(["default:1"])
    expect(names(await Effect.runPromise(storage.refresh(a, shards)))).toEqual(["default:2"])
    forgetRunner({ dir, lockExpirationMs: 60_000 }, "127.0.0.1:4001")
    expect(names(await Effect.runPromise(storage.acquire(b, shards)))).toEqual(["default:1", "default:2"])

    // With locks that expire at once, a runner that stopped refreshing loses its shards to the next taker.
    const expiring = await storages(-1).open()
    await Effect.runPromise(expiring.acquire(a, shards))
    expect(names(await Effect.runPromise(expiring.acquire(b, shards)))).toEqual(["default:1", "default:2"])
    expect(await Effect.runPromise(expiring.refresh(a, shards))).toEqual([])
  })
})

describe("promptSeed", () => {
  it("depends on the step seed and the problem id only", () => {
    expect(promptSeed(7, "p1")).toBe(promptSeed(7, "p1"))
    expect(promptSeed(7, "p1")).not.toBe(promptSeed(7, "p2"))
    expect(promptSeed(7, "p1")).not.toBe(promptSeed(8, "p1"))
    expect(Number.isInteger(promptSeed(7, "p1")) && promptSeed(7, "p1") >= 0).toBe(true)
  })
})
