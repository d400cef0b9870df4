import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runExecCommand } from "../../packages/cli/src/exec-command.js"
import { createSandboxPool } from "../../packages/sandbox/src/pool.js"
import type { SandboxPool } from "../../packages/sandbox/src/pool.js"
import { Sandbox } from "@turnwise/dsl"
import { WorkerSandbox } from "@turnwise/sandbox"
import type { Observation } from "../../packages/sandbox/src/observation.js"

const secret = "TURNWISE_SECRET_js_5f1c9e"
process.env["TURNWISE_SECRET"] = secret
const seen: Array<Observation> = []
let pool: SandboxPool

const js = async (code: string, extra: { session?: string; timeoutMs?: number; memoryMb?: number } = {}): Promise<Observation> => {
  const obs = await pool.run({ language: "js", code, ...extra })
  seen.push(obs)
  return obs
}
const failure = (obs: Observation): { kind: string; error: string; stdout: string } => {
  if (obs.ok) throw new Error(`expected a failure, got ${JSON.stringify(obs)}`)
  return obs
}

beforeAll(async () => {
  pool = createSandboxPool({ size: 2, limits: { timeoutMs: 1_000, graceMs: 300, outputLimitBytes: 4096 } })
  await pool.warm("js")
})
afterAll(async () => {
  await pool.close()
})

describe("QuickJS sandbox", () => {
  it("reports the final expression like a REPL and captures console.log", async () => {
    expect(await js("4821*97")).toMatchObject({ ok: true, value: "467637", stdout: "" })
    expect(await js("console.log('a', 1, {b: [2]}); 'x'")).toMatchObject({ ok: true, stdout: "a 1 {\"b\":[2]}\n", value: "\"x\"" })
    expect(await js("let u = 1")).not.toHaveProperty("value")
    expect(failure(await js("null.x"))).toMatchObject({ kind: "error" })
    expect(failure(await js("1 +* 2")).error).toMatch(/SyntaxError/)
  })

  it("stops while(true){} and a loop that catches the interrupt at the deadline", async () => {
    for (const code of ["while(true){}", "for(;;){ try { while(true){} } catch (e) {} }"]) {
      const obs = failure(await js(code))
      expect(obs.kind).toBe("timeout")
      expect((await js("1+1")).ok).toBe(true)
    }
  })

  it("reports memory exhaustion for growing arrays and strings", async () => {
    const objects = failure(await js("const a = []; while (true) a.push({ x: Math.random(), y: [1, 2, 3] })", { memoryMb: 16, timeoutMs: 5_000 }))
    expect(objects.kind).toBe("memory")
    const arrays = failure(await js("const a = []; for (let i = 0; i < 1e9; i++) a.push(i)", { memoryMb: 16, timeoutMs: 5_000 }))
    expect(arrays.kind).toBe("memory")
    expect(failure(await js("throw null")).kind).toBe("error") // a guest's own null is not mistaken for exhaustion
    const strings = failure(
      await js("let s = 'ab'; const keep = []; while (true) { s = s + s.slice(0, 1e5) + Math.random(); keep.push(s) }", { memoryMb: 16, timeoutMs: 5_000 }),
    )
    expect(strings.kind).toBe("memory")
  })

  it("reports typed-array and ArrayBuffer exhaustion as memory, at the call's limit", async () => {
    // QuickJS's own limit counts allocations, not bytes: these used to grow the worker's heap
    // towards 2 GB and, unless that took less than the deadline, time out.
    const typed = failure(await js("const a = []; while (true) a.push(new Float64Array(1e6))", { memoryMb: 32, timeoutMs: 1_000 }))
    expect(typed).toMatchObject({ kind: "memory", error: "InternalError: out of memory" })
    const buffers = failure(await js("const a = []; while (true) a.push(new ArrayBuffer(2 ** 26))", { memoryMb: 32, timeoutMs: 1_000 }))
    expect(buffers).toMatchObject({ kind: "memory", error: "InternalError: out of memory" })
    expect(failure(await js("new Uint8Array(64 * 2 ** 20).length", { memoryMb: 32 })).kind).toBe("memory")
    expect(await js("new Uint8Array(16 * 2 ** 20).length", { memoryMb: 32 })).toMatchObject({ ok: true, value: "16777216" })
  })

  it("keeps what the guest printed before its worker was terminated", async () => {
    // Sorting millions of strings is one native call that never checks the interrupt.
    // The memory limit is raised so that on a fast machine the deadline, not the
    // heap ceiling, is what stops it.
    const obs = failure(
      await js("console.log('before the wedge'); 'ab'.repeat(2e6).split('').sort(); console.log('after')", { timeoutMs: 100, memoryMb: 1_536 }),
    )
    expect(obs.kind).toBe("timeout")
    expect(obs.error).toBe("execution exceeded the 100 ms deadline; the worker was terminated")
    expect(obs.stdout).toBe("before the wedge\n")
    expect(await js("console.log('next'); 1")).toMatchObject({ ok: true, stdout: "next\n", value: "1" })
  })

  it("keeps every line the guest's buffered console printed, in order, however the call ends", async () => {
    const lines = Array.from({ length: 300 }, (_, i) => `line ${i}`).join("\n") + "\n"
    const printed = "for (let i = 0; i < 300; i++) console.log('line', i)"
    expect(await js(`${printed}; console.info(true, null, [1]); 7`)).toMatchObject({ ok: true, stdout: lines + "true null [1]\n", value: "7" })
    expect(failure(await js(`${printed}; throw new Error("late")`))).toMatchObject({ kind: "error", stdout: lines })
    expect(failure(await js(`${printed}; while (true) {}`))).toMatchObject({ kind: "timeout", stdout: lines })
    expect(failure(await js(`${printed}; const a = []; while (true) a.push(new Float64Array(1e6))`, { memoryMb: 32, timeoutMs: 20_000 }))).toMatchObject({
      kind: "memory",
      stdout: lines,
    })
    expect(await js("Promise.resolve().then(() => console.log('from a callback')); console.log('first')")).toMatchObject({ stdout: "first\nfrom a callback\n" })
    // A guest that replaces the built-ins its console uses only changes its own output.
    expect(await js("Array.prototype.join = () => 'hijacked'; Date.now = () => 0; console.log('still', 1); 2")).toMatchObject({
      ok: true,
      stdout: "still 1\n",
      value: "2",
    })
  })

  it("bounds recursion with a catchable error", async () => {
    expect(failure(await js("function f(n) { return f(n + 1) + 1 }; f(0)")).error).toMatch(/stack overflow/)
    expect(await js("function g(n) { return n === 0 ? 0 : 1 + g(n - 1) }; g(1000)")).toMatchObject({ ok: true, value: "1000" })
  })

  it("truncates 10 MB of output with a marker", async () => {
    // A deadline far above what this takes, so that a busy machine cannot fail it: speed is bench/sandbox.ts's.
    const obs = await js("for (let i = 0; i < 10000; i++) console.log('x'.repeat(999))", { timeoutMs: 30_000 })
    expect(obs.ok).toBe(true)
    expect(obs.stdout.length).toBeLessThan(4200)
    expect(obs.stdout).toMatch(/…\[truncated 9995904 bytes\]$/)
  })

  it("gives the guest no route to the host", async () => {
    expect(failure(await js("this.constructor.constructor(\"return process\")()")).error).toMatch(/process.*not defined/)
    const probe = await js(
      "[typeof require, typeof process, typeof fetch, typeof Deno, typeof globalThis.process, typeof setTimeout, typeof import.meta].join(',')",
    )
    expect(failure(probe).error).toMatch(/SyntaxError/) // import.meta is not valid in a script
    expect(await js("[typeof require, typeof process, typeof fetch, typeof Deno, typeof globalThis.process, typeof setTimeout].join(',')")).toMatchObject({
      value: "\"undefined,undefined,undefined,undefined,undefined,undefined\"",
    })
    const dynamicImport = await js("import('fs').then(m => console.log('loaded', typeof m.readFileSync), e => console.log('rejected'))")
    expect(dynamicImport.stdout).toBe("rejected\n")
    expect(failure(await js("import fs from 'fs'")).error).toMatch(/could not load module 'fs'/)
    const names = await js("Object.getOwnPropertyNames(globalThis).filter(n => !/^[A-Z]/.test(n)).sort().join(',')")
    expect(names.ok && names.value).not.toMatch(/process|require|fetch|Deno|Buffer|setTimeout/)
  })

  it("keeps variables in a session and not across fresh calls", async () => {
    const session = pool.openSession("js")
    await js("var total = 40; globalThis.leak = 1", { session })
    expect(await js("total + 2", { session })).toMatchObject({ ok: true, value: "42" })
    expect(await js("typeof total + ',' + typeof leak")).toMatchObject({ value: "\"undefined,undefined\"" })
    pool.closeSession(session)
    expect(await js("typeof total", { session })).toMatchObject({ value: "\"undefined\"" })
  })

  it("serves several calls at once", async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => js(`${i} * 10`)))
    expect(results.map((r) => (r.ok ? r.value : null))).toEqual(["0", "10", "20", "30", "40", "50", "60", "70"])
  })

  it("runs through the Effect service and its scoped sessions", async () => {
    const program = Effect.gen(function*() {
      const sandbox = yield* Sandbox
      const fresh = yield* sandbox.run({ language: "js", code: "6*7" })
      const inSession = yield* Effect.scoped(
        Effect.gen(function*() {
          const id = yield* Sandbox.session("js")
          yield* sandbox.run({ language: "js", code: "var k = 5", session: id })
          return yield* sandbox.run({ language: "js", code: "k * 2", session: id })
        }),
      )
      return [fresh, inSession]
    })
    const [fresh, inSession] = await Effect.runPromise(program.pipe(Effect.provide(WorkerSandbox.layer({ size: 1 }))))
    expect(fresh).toMatchObject({ ok: true, value: "42" })
    expect(inSession).toMatchObject({ ok: true, value: "10" })
  })

  it("implements `turnwise exec`: one JSON line per cell, exit code 0 when the sandbox worked", async () => {
    const ok = await runExecCommand(["--lang", "js"], "4821*97")
    expect(ok.exitCode).toBe(0)
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, value: "467637" })
    const loop = await runExecCommand(["--lang=js", "--timeout-ms", "200"], "while(true){}")
    expect(loop.exitCode).toBe(0)
    expect(JSON.parse(loop.stdout)).toMatchObject({ ok: false, kind: "timeout" })
    const cells = await runExecCommand(["--lang", "js", "--session"], "var a = 2\n// %%\na * 21\n")
    expect(cells.stdout.trim().split("\n").map((l) => JSON.parse(l).value)).toEqual([undefined, "42"])
    expect((await runExecCommand(["--lang", "ruby"], "1")).exitCode).toBe(2)
  })

  it("still serves normal calls after the suite and never leaked the host environment", async () => {
    expect(await js("[1,2,3].map(x => x * x).join('+')")).toMatchObject({ ok: true, value: "\"1+4+9\"" })
    for (const obs of seen) expect(JSON.stringify(obs)).not.toContain(secret)
  })
})
