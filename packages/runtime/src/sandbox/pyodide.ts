/**
 * Python guests in Pyodide, loaded once per worker.
 *
 * Loading Pyodide takes seconds, so a worker keeps one interpreter and gives each
 * fresh call a fresh globals dict (with a private copy of the pristine builtins); after
 * every call the driver (pyodide-driver.ts) returns the interpreter to its pristine
 * state (modules, namespaces, registries, files), keeping a session's own changes for
 * its next call. A session keeps its globals dict until it is closed. The final
 * expression's `repr` is reported like a REPL would.
 *
 * Isolation, in layers:
 * - Python: `js`, `pyodide_js`, `pyodide`, `_pyodide` and `_pyodide_core` are
 *   removed from `sys.modules` and a meta-path finder refuses to import them again;
 *   Pyodide's own JS import finder is removed; `os.environ` is emptied.
 * - JavaScript realm of the worker (in case a guest still reaches a JS proxy, e.g.
 *   through `gc`): the `js` module is an empty object instead of `globalThis`; the
 *   constructors of every function kind throw (no `Function("return process")`);
 *   `eval`, NODEFS, `FS.mount`, package loading and Node's module-loading hooks of
 *   `process` are gone; timers never fire, so asyncio callbacks a guest schedules
 *   cannot run between calls. The worker itself starts with an empty `process.env`.
 * - Filesystem: Pyodide's in-memory FS only (NODEFS is never mounted).
 * - Memory: a ceiling on the WebAssembly heap (heap-ceiling.ts) refuses to grow it past
 *   the call's limit, so the allocation fails inside Python with `MemoryError`.
 * - Time: the host sets the interrupt flag at the deadline (`KeyboardInterrupt`)
 *   and terminates the worker after a grace period if that did not stop the guest;
 *   standard output is line-buffered into memory shared with the host, so the lines
 *   printed before that are kept.
 *
 * @category constructors
 */
import NodeModule, { createRequire } from "node:module"
import { dirname } from "node:path"
import { loadPyodide } from "pyodide"
import { watchDictVersions } from "./dict-versions.js"
import type { Cell, Engine } from "./engine.js"
import { installHeapCeiling } from "./heap-ceiling.js"
import { capText } from "./observation.js"
import type { FailureKind, OutputCapture } from "./observation.js"
import type { GuestOutcome } from "./protocol.js"
import { driverSource } from "./pyodide-driver.js"

/** A function that throws, put where code generation or host access used to be. */
const blocked = function blocked(): never {
  throw new TypeError("not available in the sandbox")
}

/** Make every function constructor throw, so a JS proxy cannot be turned into host code. */
const lockDownRealm = (): void => {
  const prototypes = [
    Function.prototype,
    Object.getPrototypeOf(async function () {}),
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async function* () {}),
  ]
  for (const proto of prototypes) {
    Object.defineProperty(proto, "constructor", { value: blocked, writable: false, configurable: false })
  }
  Object.defineProperty(globalThis, "eval", { value: blocked, writable: false, configurable: false })
  for (const key of ["binding", "_linkedBinding", "dlopen", "getBuiltinModule", "reallyExit", "kill", "chdir"]) {
    if (key in process) Reflect.set(process, key, blocked)
  }
  // Pyodide's asyncio loop schedules guest callbacks (call_soon, call_later, tasks) with
  // these timers. A call runs synchronously, so they could only run between calls: after
  // the interpreter was restored, with nobody's output, able to wedge the worker before
  // the next call. They are dropped; a guest runs only inside its call.
  for (const key of ["setTimeout", "setInterval", "setImmediate"]) {
    Object.defineProperty(globalThis, key, { value: dropCallback, writable: false, configurable: false })
  }
}

/** A timer that never fires (see lockDownRealm). */
const dropCallback = (): number => 0

/**
 * Load Pyodide, harden it, and return an engine.
 *
 * @example
 * const engine = await pyodideEngine({ output: OutputCapture.shared(65536), outputLimitBytes: 65536, pythonRecursionLimit: 1000, interrupt })
 * engine.run({ code: "1+2", session: null, timeoutMs: 1000, memoryMb: 64 }) // value "3"
 */
export const pyodideEngine = async (options: {
  /** Where the guest's stdout and stderr go (shared with the host). */
  readonly output: OutputCapture
  readonly outputLimitBytes: number
  readonly pythonRecursionLimit: number
  readonly interrupt: SharedArrayBuffer
}): Promise<Engine> => {
  const ceiling = installHeapCeiling()
  const output = options.output
  const interrupt = new Int32Array(options.interrupt)
  const jsGlobals: object = Object.create(null)
  // Pyodide guesses its own location from a stack trace, which a TypeScript loader can skew; name it.
  const indexURL = dirname(createRequire(import.meta.url).resolve("pyodide/package.json")) + "/"
  const pyodide = await loadPyodide({ indexURL, jsglobals: jsGlobals, env: {}, stdout: () => undefined, stderr: () => undefined })
  const write = { write: (buffer: Uint8Array): number => (output.write(buffer), buffer.length) }
  pyodide.setStdout(write)
  pyodide.setStderr(write)
  pyodide.setInterruptBuffer(interrupt)
  pyodide.setStdin({ error: true }) // input() fails instead of reading the host's stdin

  const driver = pyodide.toPy({}) as { get(key: string): unknown; destroy(): void }
  pyodide.runPython(driverSource(options.pythonRecursionLimit), { globals: driver as never })
  const runCell = driver.get("run_cell") as (code: string, session: string | undefined) => string
  const settleCell = driver.get("settle") as (session: string | undefined, changed: string | undefined) => string
  const closeCell = driver.get("close_session") as (session: string) => void

  // Cut the routes from a JS proxy to the host filesystem and to code generation.
  const fs = pyodide.FS as { filesystems: Record<string, unknown>; mount: unknown }
  delete fs.filesystems["NODEFS"]
  fs.mount = blocked
  for (const key of ["loadPackage", "loadPackagesFromImports", "mountNodeFS", "mountNativeFS", "runPythonAsync", "pyimport"]) {
    Reflect.set(pyodide, key, blocked)
  }
  const module: unknown = Reflect.get(pyodide, "_module")
  if (typeof module !== "object" || module === null) throw new Error("pyodide: the emscripten module is not reachable")
  Reflect.set(module, "NODEFS", undefined)
  // Pyodide's Node glue calls require("child_process") for system(), require("ws") for
  // sockets and require("fs") for NODEFS at call time, both through its CommonJS module's
  // require and through a global one. After loading, only crypto (random numbers) resolves.
  const allowed = new Set(["crypto", "node:crypto"])
  const denied = (name: string): Error => new Error(`module "${name}" is not available in the sandbox`)
  const moduleRequire: unknown = Reflect.get(NodeModule.prototype, "require")
  if (typeof moduleRequire !== "function") throw new Error("pyodide: Module.prototype.require is missing")
  Reflect.set(NodeModule.prototype, "require", function (this: unknown, name: string): unknown {
    if (!allowed.has(name)) throw denied(name)
    return Reflect.apply(moduleRequire, this, [name])
  })
  const globalRequire: unknown = Reflect.get(globalThis, "require")
  Reflect.set(globalThis, "require", (name: string): unknown => {
    if (!allowed.has(name) || typeof globalRequire !== "function") throw denied(name)
    return Reflect.apply(globalRequire, undefined, [name])
  })
  lockDownRealm()

  /** The interpreter's heap (a new buffer after each growth). */
  const heap = (): ArrayBuffer => {
    const bytes: unknown = Reflect.get(module, "HEAPU8")
    if (!(bytes instanceof Uint8Array)) throw new Error("pyodide: the emscripten heap is not reachable")
    return bytes.buffer as ArrayBuffer
  }
  const memory = (): number => heap().byteLength
  const baseline = memory()

  const addresses = (driver.get("watched_addresses") as () => { toJs(): Array<number>; destroy(): void })()
  const versions = watchDictVersions(addresses.toJs(), {
    heap,
    address: (driver.get("probe_address") as () => number)(),
    touch: driver.get("touch_probe") as () => void,
    idle: driver.get("probe_address") as () => number,
  })
  addresses.destroy()

  /** Back to the pristine interpreter after a call; false when that failed and the worker must be replaced. */
  const settle = (session: string | null): boolean => {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const changed = versions.changed()
        const dirty = settleCell(session ?? undefined, changed === null ? undefined : changed.join(","))
        versions.rebase()
        return dirty === ""
      } catch {
        // The deadline's interrupt may land in the restore. The host raises it once per
        // call and Pyodide clears it when raising, so the second attempt runs to the end.
        Atomics.store(interrupt, 0, 0)
      }
    }
    return false
  }

  const run = (cell: Cell): { outcome: GuestOutcome; retire: boolean } => {
    output.reset()
    ceiling.lower(baseline + cell.memoryMb * 1024 * 1024)
    let answer: string
    try {
      // undefined, not null: Pyodide turns JS null into `jsnull`, which is not Python's None.
      answer = runCell(cell.code, cell.session ?? undefined)
    } catch (cause) {
      // The interpreter itself failed (e.g. a fatal error): report it and retire the worker.
      ceiling.lift()
      const message = cause instanceof Error ? cause.message : String(cause)
      return { outcome: { ok: false, kind: "crash", error: `Interpreter failure: ${message.slice(-2000)}`, stdout: output.text() }, retire: true }
    }
    ceiling.lift()
    const clean = settle(cell.session)
    const split = answer.indexOf("\n")
    const status = answer.slice(0, split)
    const payload = answer.slice(split + 1)
    const stdout = output.text()
    // A heap far above the limit (kept by a session, or fragmentation) is returned to the OS by replacing the worker.
    const retire = !clean || memory() > baseline + 2 * 1024 * 1024 * 1024
    if (status === "ok") return { outcome: { ok: true, stdout, value: null }, retire }
    if (status === "value") return { outcome: { ok: true, stdout, value: capText(payload, options.outputLimitBytes) }, retire }
    const kind: FailureKind = status === "timeout" || status === "memory" ? status : "error"
    return { outcome: { ok: false, kind, error: capText(payload, options.outputLimitBytes), stdout }, retire }
  }

  return { run, closeSession: (session) => closeCell(session) }
}
