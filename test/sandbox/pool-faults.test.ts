/**
 * The pool under worker faults: every call settles, and close() returns, whatever the
 * workers do. A scripted worker (fixtures/fault-worker.mjs) misbehaves on request, so
 * these tests depend on no interpreter's speed.
 */
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterEach, describe, expect, it } from "vitest"
import { createSandboxPool } from "../../packages/sandbox/src/pool.js"
import type { SandboxPool, SandboxPoolOptions } from "../../packages/sandbox/src/pool.js"
import { SandboxError } from "../../packages/sandbox/src/observation.js"
import type { Observation } from "../../packages/sandbox/src/observation.js"

const faultWorker = (start?: "fail" | "exit" | "never"): string => {
  const url = new URL("./fixtures/fault-worker.mjs", import.meta.url)
  if (start !== undefined) url.searchParams.set("start", start)
  return url.href
}

const execFileAsync = promisify(execFile)

const pools: Array<SandboxPool> = []
const makePool = (options: SandboxPoolOptions & { start?: "fail" | "exit" | "never" } = {}): SandboxPool => {
  const pool = createSandboxPool({ size: 1, workerEntry: faultWorker(options.start), limits: { timeoutMs: 60_000, graceMs: 1_000 }, ...options })
  pools.push(pool)
  return pool
}
afterEach(async () => {
  for (const pool of pools.splice(0)) await pool.close()
})

/** How a promise settled, without throwing. */
const settled = <A>(promise: Promise<A>): Promise<{ value: A } | { error: unknown }> =>
  promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  )

const failureOf = (obs: Observation): { kind: string; error: string } => {
  if (obs.ok) throw new Error(`expected a failure, got ${JSON.stringify(obs)}`)
  return obs
}

/** Timers and worker threads this process holds, by type. */
const resources = (): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const name of process.getActiveResourcesInfo()) counts[name] = (counts[name] ?? 0) + 1
  return counts
}

describe("sandbox pool faults", () => {
  it("answers a call whose worker exits or throws mid-call with a crash, and serves the next call on a new worker", async () => {
    const pool = makePool()
    for (const code of ["exit", "throw"]) {
      const obs = failureOf(await pool.run({ language: "js", code }))
      expect(obs.kind).toBe("crash")
      expect(obs.error).toMatch(code === "exit" ? /exited with code 3/ : /the worker crashed: the worker fell over/)
      expect(await pool.run({ language: "js", code: "answer:next" })).toMatchObject({ ok: true, value: "next" })
    }
  })

  it("terminates a worker that never answers at the deadline, and times the call out", async () => {
    const pool = makePool({ limits: { timeoutMs: 20, graceMs: 20 } })
    for (const code of ["hang", "spin"]) {
      const obs = failureOf(await pool.run({ language: "js", code }))
      expect(obs).toMatchObject({ kind: "timeout", error: "execution exceeded the 20 ms deadline; the worker was terminated" })
    }
    expect(await pool.run({ language: "js", code: "answer:alive" })).toMatchObject({ ok: true, value: "alive" })
  })

  it("ignores answers it did not ask for, and answers each call once", async () => {
    const pool = makePool()
    expect(await pool.run({ language: "js", code: "stray" })).toMatchObject({ ok: true, value: "first" })
    expect(await pool.run({ language: "js", code: "answer:second call" })).toMatchObject({ ok: true, value: "second call" })
  })

  it("close() while calls run and wait settles every one of them, and returns", async () => {
    const pool = makePool({ size: 2 })
    const calls = ["spin", "hang", "answer:queued", "answer:queued too"].map((code) => settled(pool.run({ language: "js", code })))
    await pool.warm("js") // both workers loaded: two calls run, two wait
    await pool.close()
    for (const outcome of await Promise.all(calls)) {
      if (!("error" in outcome)) continue // a queued call may have been served before close
      expect(outcome.error).toBeInstanceOf(SandboxError)
    }
    const running = await Promise.all(calls.slice(0, 2))
    for (const outcome of running) expect(outcome).toHaveProperty("error")
    expect(pool.stats()).toMatchObject({ workers: { js: [], python: [] }, queued: 0, exiting: 0, closed: true })
    await expect(pool.run({ language: "js", code: "answer:late" })).rejects.toBeInstanceOf(SandboxError)
  })

  it("close() while a worker loads rejects warm() and leaves no timer or thread behind", async () => {
    const before = resources()
    const pool = makePool({ start: "never", startTimeoutMs: 600_000 })
    const warming = settled(pool.warm("js"))
    const call = settled(pool.run({ language: "js", code: "answer:never served" }))
    await pool.close()
    expect(await warming).toHaveProperty("error")
    expect(await call).toHaveProperty("error")
    const after = resources()
    expect(after["Timeout"] ?? 0).toBeLessThanOrEqual(before["Timeout"] ?? 0)
    expect(after["Worker"] ?? 0).toBeLessThanOrEqual(before["Worker"] ?? 0)
  })

  it("leaves nothing holding the process after a worker was terminated at the deadline and the pool closed", async () => {
    // What `turnwise exec` does with a guest that outlives its deadline: one call, its worker
    // terminated, then close. In a process of its own, so that nothing else holds it.
    for (
      const [entry, code] of [
        [faultWorker(), "spin"],
        ["real", "'ab'.repeat(2e6).split('').sort()"], // one native call that never checks the interrupt
      ] as const
    ) {
      const { stdout } = await execFileAsync(process.execPath, [
        "--import",
        "tsx",
        fileURLToPath(new URL("./fixtures/close-after-kill.ts", import.meta.url)),
        entry,
        code,
      ])
      const report = JSON.parse(stdout) as { observation: Observation; resources: Array<string> }
      expect(failureOf(report.observation).kind).toBe("timeout")
      // Only the child's own stdio pipes may remain: no timer, worker or message port of the pool.
      expect(report.resources.filter((name) => name !== "PipeWrap" && name !== "TTYWrap")).toEqual([])
    }
  })

  it("does not hang when a worker crashes as the pool closes", async () => {
    const pool = makePool()
    await pool.warm("js")
    const call = settled(pool.run({ language: "js", code: "throw-later" }))
    const closing = pool.close()
    await closing
    const outcome = await call
    // Whichever came first, the crash or the close, the call got an answer.
    if ("error" in outcome) expect(outcome.error).toBeInstanceOf(SandboxError)
    else expect(failureOf(outcome.value).kind).toBe("crash")
    expect(pool.stats().exiting).toBe(0)
  })

  it("rejects the waiting calls and warm() when no worker can start", async () => {
    for (const start of ["fail", "exit"] as const) {
      const pool = makePool({ start })
      const error = await pool.run({ language: "js", code: "answer:x" }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(SandboxError)
      expect(String((error as SandboxError).reason)).toMatch(
        start === "fail" ? /cannot start a js worker: the interpreter refused to load/ : /cannot start a js worker: the worker exited with code 7/,
      )
      await expect(pool.warm("js")).rejects.toBeInstanceOf(SandboxError)
    }
  })

  it("rejects a session's waiting call when the session is closed, instead of keeping it forever", async () => {
    const pool = makePool()
    const session = pool.openSession("js")
    const blocker = settled(pool.run({ language: "js", code: "hang" }))
    const waiting = settled(pool.run({ language: "js", code: "answer:in session", session }))
    pool.closeSession(session)
    const outcome = await waiting
    expect(outcome).toHaveProperty("error")
    expect(String((outcome as { error: SandboxError }).error.reason)).toMatch(/session "session-1" was closed while its call waited/)
    await pool.close()
    expect(await blocker).toHaveProperty("error")
  })

  it("starts no replacement after a worker died unless a call waits for one", async () => {
    const pool = makePool()
    expect(failureOf(await pool.run({ language: "js", code: "exit" })).kind).toBe("crash")
    expect(pool.stats().workers.js).toEqual([])
    expect(await pool.run({ language: "js", code: "answer:on demand" })).toMatchObject({ ok: true, value: "on demand" })
    expect(pool.stats().workers.js).toEqual(["idle"])
  })
})
