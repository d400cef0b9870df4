/**
 * JavaScript guests in QuickJS (quickjs-emscripten, release build, synchronous).
 *
 * Every fresh call gets its own QuickJS runtime and context, so nothing survives a
 * call; a session keeps its runtime and context until it is closed. The guest sees
 * only the ECMAScript built-ins and a `console` whose methods write to the capped
 * output: there is no host object in its realm, so `process`, `require`, `fetch` or
 * `this.constructor.constructor("return process")()` find nothing. QuickJS enforces
 * the deadline itself (its interrupt handler raises an uncatchable error) and the
 * stack size (deep recursion raises a catchable "stack overflow"); the host still
 * terminates the worker if the guest somehow outlives the deadline (a long native
 * call such as sorting millions of strings never checks the interrupt). Memory is
 * bounded twice: QuickJS's own limit (which counts allocations, not their bytes) and a
 * ceiling on the worker's WebAssembly heap (see heap-ceiling.ts), which also catches
 * typed arrays and ArrayBuffers; either way allocation fails with "out of memory".
 *
 * @category constructors
 */
import { getQuickJS, shouldInterruptAfterDeadline } from "quickjs-emscripten"
import type { QuickJSContext, QuickJSHandle, QuickJSRuntime } from "quickjs-emscripten"
import type { Cell, Engine } from "./engine.js"
import { installHeapCeiling } from "./heap-ceiling.js"
import { capText } from "./observation.js"
import type { FailureKind, OutputCapture } from "./observation.js"
import type { GuestOutcome } from "./protocol.js"

interface Vm {
  readonly runtime: QuickJSRuntime
  readonly context: QuickJSContext
  /** The in-realm value formatter (see formatValueSource). */
  readonly formatter: QuickJSHandle
}

// Formats the completion value inside the guest realm, like a REPL would, so that
// getters and toJSON run under the guest's own limits rather than on the host.
const formatValueSource = `(v) => {
  if (typeof v === "string") return JSON.stringify(v)
  if (typeof v === "function") return "[Function " + (v.name || "(anonymous)") + "]"
  if (typeof v === "bigint") return v + "n"
  if (typeof v === "symbol" || v === null || typeof v !== "object") return String(v)
  if (v instanceof Error) return String(v)
  try { const s = JSON.stringify(v); return s === undefined ? String(v) : s } catch (e) { return String(v) }
}`

const classify = (message: string): FailureKind =>
  /out of memory/i.test(message) ? "memory" : /interrupted/i.test(message) ? "timeout" : "error"

/**
 * Load QuickJS and return an engine.
 *
 * @example
 * const engine = await quickJsEngine({ output: OutputCapture.shared(65536), outputLimitBytes: 65536, jsStackBytes: 524288 })
 * engine.run({ code: "1+2", session: null, timeoutMs: 1000, memoryMb: 64 }) // value "3"
 */
export const quickJsEngine = async (options: {
  /** Where the guest's console writes (shared with the host). */
  readonly output: OutputCapture
  readonly outputLimitBytes: number
  readonly jsStackBytes: number
}): Promise<Engine> => {
  const ceiling = installHeapCeiling()
  const QuickJS = await getQuickJS()
  const sessions = new Map<string, Vm>()
  const output = options.output
  // Guest memory is measured from the heap QuickJS starts with; sessions kept alive in
  // this worker count against the ceiling of every call, as they share the heap.
  const module: unknown = Reflect.get(QuickJS, "module")
  const heapBytes = (): number => {
    const heap: unknown = typeof module === "object" && module !== null ? Reflect.get(module, "HEAPU8") : undefined
    if (!(heap instanceof Uint8Array)) throw new Error("quickjs: the emscripten heap is not reachable")
    return heap.buffer.byteLength
  }
  const baseline = heapBytes()

  const newVm = (memoryMb: number): Vm => {
    const runtime = QuickJS.newRuntime()
    runtime.setMemoryLimit(memoryMb * 1024 * 1024)
    runtime.setMaxStackSize(options.jsStackBytes)
    const context = runtime.newContext()
    const formatter = context.unwrapResult(context.evalCode(formatValueSource, "format.js"))
    const vm: Vm = { runtime, context, formatter }
    const consoleHandle = context.newObject()
    for (const method of ["log", "info", "warn", "error", "debug"]) {
      const fn = context.newFunction(method, (...args: Array<QuickJSHandle>) => {
        const parts = args.map((a) => (context.typeof(a) === "string" ? context.getString(a) : stringify(vm, a)))
        output.write(parts.join(" ") + "\n")
      })
      context.setProp(consoleHandle, method, fn)
      fn.dispose()
    }
    context.setProp(context.global, "console", consoleHandle)
    consoleHandle.dispose()
    return vm
  }

  const dispose = (vm: Vm): boolean => {
    try {
      vm.formatter.dispose()
      vm.context.dispose()
      vm.runtime.dispose()
      return true
    } catch {
      return false // a leaked handle: the worker is retired rather than trusted
    }
  }

  const run = (cell: Cell): { outcome: GuestOutcome; retire: boolean } => {
    const existing = cell.session === null ? undefined : sessions.get(cell.session)
    const vm = existing ?? newVm(cell.memoryMb)
    if (cell.session !== null && existing === undefined) sessions.set(cell.session, vm)
    output.reset()
    const limitBytes = cell.memoryMb * 1024 * 1024
    vm.runtime.setMemoryLimit(limitBytes)
    vm.runtime.setInterruptHandler(shouldInterruptAfterDeadline(Date.now() + cell.timeoutMs))
    let outcome: GuestOutcome
    try {
      ceiling.lower(baseline + limitBytes)
      const result = vm.context.evalCode(cell.code, "cell.js")
      if (result.error !== undefined) {
        ceiling.lift() // inspecting the error allocates
        const thrownNull = vm.context.typeof(result.error) === "object" && vm.context.dump(result.error) === null
        let message = errorText(vm.context, result.error)
        result.error.dispose()
        // QuickJS throws null when it cannot even allocate the exception object.
        const exhausted = thrownNull && (ceiling.refused() || memoryUsed(vm) >= 0.9 * limitBytes)
        if (exhausted) message = "InternalError: out of memory"
        outcome = { ok: false, kind: exhausted ? "memory" : classify(message), error: message, stdout: output.text() }
      } else {
        const value = result.value
        // Settle promise callbacks the cell scheduled (their console output belongs to it).
        const jobs = vm.runtime.executePendingJobs()
        if (jobs.error !== undefined) jobs.error.dispose()
        const text = vm.context.typeof(value) === "undefined" ? null : stringify(vm, value)
        ceiling.lift()
        value.dispose()
        outcome = { ok: true, stdout: output.text(), value: text === null ? null : capText(text, options.outputLimitBytes) }
      }
    } catch (cause) {
      // The interpreter itself failed (not a guest exception): report and retire.
      ceiling.lift()
      const message = cause instanceof Error ? cause.message : String(cause)
      const kind = classify(message) === "memory" || ceiling.refused() ? "memory" : "crash"
      return { outcome: { ok: false, kind, error: `InternalError: ${message}`, stdout: output.text() }, retire: true }
    }
    vm.runtime.removeInterruptHandler()
    if (cell.session === null) return { outcome, retire: !dispose(vm) }
    return { outcome, retire: false }
  }

  const closeSession = (session: string): void => {
    const vm = sessions.get(session)
    if (vm === undefined) return
    sessions.delete(session)
    dispose(vm)
  }

  return { run, closeSession }
}

/** Bytes the runtime has allocated (the limit is lifted while measuring, since measuring allocates). */
const memoryUsed = (vm: Vm): number => {
  vm.runtime.setMemoryLimit(-1)
  const usage = vm.runtime.computeMemoryUsage()
  const dumped: unknown = vm.context.dump(usage)
  usage.dispose()
  return typeof dumped === "object" && dumped !== null && "memory_used_size" in dumped && typeof dumped.memory_used_size === "number"
    ? dumped.memory_used_size
    : 0
}

/** Render a guest value with the in-realm formatter; failures (a throwing toJSON) become a placeholder. */
const stringify = (vm: Vm, handle: QuickJSHandle): string => {
  const context = vm.context
  const result = context.callFunction(vm.formatter, context.undefined, handle)
  if (result.error !== undefined) {
    result.error.dispose()
    return "[unprintable]"
  }
  const text = context.getString(result.value)
  result.value.dispose()
  return text
}

/** "Name: message" of a thrown guest value. */
const errorText = (context: QuickJSContext, handle: QuickJSHandle): string => {
  const dumped: unknown = context.dump(handle)
  if (typeof dumped === "object" && dumped !== null && "message" in dumped) {
    const name = "name" in dumped && typeof dumped.name === "string" ? dumped.name : "Error"
    return `${name}: ${String(dumped.message)}`
  }
  return `Uncaught ${typeof dumped === "string" ? dumped : JSON.stringify(dumped) ?? String(dumped)}`
}
